"""A paired pix2pix model through the whole workflow beside the CycleGAN models.

The suite's shared end-to-end run (``e2e_run``) has ``pix2pix_scratch`` among its models: the
paired model trains (U-Net, conditional PatchGAN + L1), is predicted, evaluated per slice and per
volume, tested against the control, embedded in the latent space, scored by FID, and appears in
the report, exactly as the CycleGAN models do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py

from mrct.models.trained import generator_metadata

MODELS = tw.E2E["models"]
pytestmark = pytest.mark.slow  # reads the shared pipeline run


@pytest.fixture
def finished_run(e2e_run: Path) -> Path:
    assert "pix2pix_scratch" in MODELS and "scratch" in MODELS
    return e2e_run


def test_the_paired_model_trains_a_unet_with_the_pix2pix_losses(finished_run: Path) -> None:
    models = finished_run / "results" / "models"
    for direction in ("mr2ct", "ct2mr"):
        assert generator_metadata(models / "pix2pix_scratch" / f"G_{direction}.pth")["network"] == "unet"
        assert generator_metadata(models / "scratch" / f"G_{direction}.pth")["network"] == "resnet"
    log = pd.read_csv(models / "pix2pix_scratch" / "train_log.csv")
    assert {"loss_L1_mr2ct", "loss_L1_ct2mr", "loss_D_ct", "loss_D_mr"} <= set(log.columns)
    assert not any("cycle" in column for column in log.columns)


def test_the_paired_model_is_in_every_table_and_the_report(finished_run: Path) -> None:
    results = finished_run / "results"
    for direction in ("mr2ct", "ct2mr"):
        table = pd.read_csv(results / "tables" / f"metrics_{direction}.csv")
        assert list(table["model"]) == MODELS
        # A value wherever the CycleGAN model has one (VIF needs larger slices than the tiny 32 px).
        averages = table.set_index("model").filter(regex="_avg$").notna()
        assert averages.loc["pix2pix_scratch"].equals(averages.loc["scratch"]) and averages.loc["scratch"].sum() > 10
    volumes = pd.read_csv(results / "metrics" / "pix2pix_scratch_volumes.csv")
    assert len(volumes) > 0 and np.isfinite(volumes[["mae_hu", "psnr_hu", "ssim_hu"]].to_numpy()).all()
    assert list(pd.read_csv(results / "tables" / "metrics_volumes.csv")["model"]) == MODELS
    significance = pd.read_csv(results / "tables" / "significance.csv")
    assert "pix2pix_scratch" in set(significance["model"])
    assert set(pd.read_csv(results / "latent" / "separability.csv")["model"]) == set(MODELS)
    assert set(pd.read_csv(results / "latent" / "joint_embedding.csv")["model"]) == set(MODELS)
    fid = pd.read_csv(results / "tables" / "fid.csv")
    paired = fid[fid["model"] == "pix2pix_scratch"]
    assert len(paired) == 2 and paired["fid_random_embedding"].notna().all()
    page = (results / "report.html").read_text(encoding="utf-8")
    assert "pix2pix_scratch" in page and "paired baseline (random init)" in page
