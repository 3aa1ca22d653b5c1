"""Entry point of rule patient_list: the chosen patients and their centres (patients.csv)."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.sources.patients import write_patients_table  # noqa: E402

table = write_patients_table(
    snakemake.params.patients,  # noqa: F821
    snakemake.params.source,  # noqa: F821
    snakemake.output.table,  # noqa: F821
)
log.info("%d patients; per centre: %s", len(table), table["centre"].replace("", "unknown").value_counts().to_dict())
