"""Entry point of rule registration_qa."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.registration_qa import registration_qa_files

log = setup_logging(snakemake.log[0])
registration_qa_files(
    snakemake.input.ct,
    snakemake.input.mr,
    snakemake.input.ct_mask,
    snakemake.input.mr_mask,
    snakemake.input.transform,
    snakemake.output.json,
    snakemake.wildcards.patient,
    mr_native_path=snakemake.input.mr_native,
)
