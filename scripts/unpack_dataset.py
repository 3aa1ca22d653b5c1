"""Entry point of rule unpack_dataset: extract one patient's MR and CT from the SynthRAD2023 archive."""

from pathlib import Path

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.sources.synthrad import extract_patient  # noqa: E402

extract_patient(
    snakemake.input.archive,  # noqa: F821
    snakemake.params.region,  # noqa: F821
    snakemake.wildcards.patient,  # noqa: F821
    Path(snakemake.output.mr).parent,  # noqa: F821
)
