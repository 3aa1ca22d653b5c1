"""Entry point of rule train: fine-tune (or train from scratch) one model, resumably."""

from mrct.io.joblog import setup_logging, untracked_setting

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from mrct.training.loop import train_model  # noqa: E402
from mrct.training.settings import RESULT_FREE, TrainSettings  # noqa: E402

torch.set_num_threads(snakemake.threads)  # noqa: F821
settings = TrainSettings(
    **snakemake.params.settings,  # noqa: F821
    **{key: untracked_setting(snakemake, "train", key) for key in RESULT_FREE},  # noqa: F821
)
# On SIGTERM/SIGUSR1 this raises TrainingInterrupted (a SystemExit, status 128 + signal) after
# saving a checkpoint: the job fails, and Snakemake's retry or a rerun resumes.
train_model(
    settings,
    manifest=snakemake.input.manifest,  # noqa: F821
    pretrained=snakemake.input.pretrained or None,  # noqa: F821
    out_dir=Path(snakemake.output.g_mr2ct).parent,  # noqa: F821
    checkpoint_path=snakemake.params.checkpoint,  # noqa: F821
)
