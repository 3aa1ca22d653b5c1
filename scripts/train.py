"""Entry point of rule train: fine-tune (or train from scratch) one model, resumably."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from mrct.training.loop import train_model  # noqa: E402
from mrct.training.settings import TrainSettings  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
settings = TrainSettings(
    **snakemake.params.settings,  # noqa: F821
    checkpoint_every=untracked_setting(snakemake, "train", "checkpoint_every"),  # noqa: F821
    device=untracked_setting(snakemake, "train", "device"),  # noqa: F821
)
train_model(
    settings,
    manifest=snakemake.input.manifest,  # noqa: F821
    pretrained=snakemake.input.pretrained or None,  # noqa: F821
    out_dir=Path(snakemake.output.g_mr2ct).parent,  # noqa: F821
    checkpoint_path=snakemake.params.checkpoint,  # noqa: F821
)
