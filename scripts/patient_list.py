"""Entry point of rule patient_list: the chosen patients and their centres (patients.csv)."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.sources.centres import report_disagreements  # noqa: E402
from mrct.sources.patients import centre_of, write_patients_table  # noqa: E402

patients = snakemake.params.patients  # noqa: F821
source = snakemake.params.source  # noqa: F821
centres = dict(snakemake.params.centres)  # noqa: F821
report_disagreements(centres, {p: centre_of(p, source) for p in centres})
table = write_patients_table(patients, source, snakemake.output.table, centres)  # noqa: F821
log.info("%d patients; per centre: %s", len(table), table["centre"].replace("", "unknown").value_counts().to_dict())
