"""Entry point of rule register."""

import SimpleITK as sitk

from mrct.io.joblog import setup_logging
from mrct.preprocess.steps import register_files

log = setup_logging(snakemake.log[0])
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(snakemake.threads)
register_files(
    snakemake.input.mr,
    snakemake.input.mr_mask,
    snakemake.input.ct,
    dict(snakemake.output),
    dict(snakemake.params.settings),
    snakemake.params.head_threshold_hu,
    snakemake.params.seed,
    snakemake.wildcards.patient,
    # SynthRAD2023's own evaluation mask; absent (an empty input) for other sources.
    evaluation_mask_path=snakemake.input.get("evaluation_mask") or None,
)
