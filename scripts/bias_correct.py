"""Entry point of rule bias_correct."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.steps import bias_correct_files

log = setup_logging(snakemake.log[0])
bias_correct_files(
    snakemake.input.mr,
    dict(snakemake.output),
    snakemake.params.method,
    dict(snakemake.params.settings),
    snakemake.wildcards.patient,
)
