"""Entry point of rule translate_volume: one registered volume into the other modality."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from mrct.inference.translate import translate_volume  # noqa: E402
from mrct.io.device import resolve_device  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
translate_volume(
    Path(snakemake.input.generator).parent,  # noqa: F821
    snakemake.params.direction,  # noqa: F821
    snakemake.input.volume,  # noqa: F821
    snakemake.output.volume,  # noqa: F821
    manifest=snakemake.input.manifest,  # noqa: F821
    patient=snakemake.wildcards.patient,  # noqa: F821
    batch_size=snakemake.params.batch_size,  # noqa: F821
    device=str(resolve_device(untracked_setting(snakemake, "train", "device"))),  # noqa: F821
)
