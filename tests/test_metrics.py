"""Metric definitions against independent implementations written differently (numpy windows)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.ndimage import gaussian_filter, shift
from torchmetrics.functional.image import visual_information_fidelity

from mrct.evaluation import metrics
from mrct.evaluation.evaluate import evaluate_model
from mrct.slices.geometry import from_uint8


def _reference_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth 'head' with texture and a flat black background, like a CT slice PNG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    head = (xx**2 / 0.16 + yy**2 / 0.2) < 1
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), 2) * 300
    image = np.where(head, 120 + 60 * np.cos(6 * xx) + texture, 0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _distorted(kind: str, ref: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    r = ref.astype(np.float64)
    out = {
        "noise": r + rng.normal(0, 12, r.shape),
        "blur": gaussian_filter(r, 1.5),
        "contrast": 0.6 * (r - 128) + 128,
        "shift": shift(r, (2, -3), order=0),
    }[kind]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _psnr_formula(pred, ref):
    mse = np.mean((pred.astype(float) - ref.astype(float)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


def _ssim_windows(pred, ref, data_range=255.0):
    """SSIM with an explicit 11x11 Gaussian weight on every window of a symmetric-padded image."""
    coords = np.arange(11) - 5
    weight = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 1.5**2))
    weight /= weight.sum()

    def local_mean(image):
        windows = sliding_window_view(np.pad(image, 5, mode="symmetric"), (11, 11))
        return np.einsum("ijkl,kl->ij", windows, weight)

    x, y = ref.astype(float), pred.astype(float)
    mx, my = local_mean(x), local_mean(y)
    vx, vy = local_mean(x * x) - mx**2, local_mean(y * y) - my**2
    cxy = local_mean(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s[5:-5, 5:-5].mean()


def _uqi_windows(pred, ref, block=8):
    """Wang & Bovik's Q from per-window statistics, with the reference code's special cases."""
    xw = sliding_window_view(ref.astype(float), (block, block)).reshape(-1, block * block)
    yw = sliding_window_view(pred.astype(float), (block, block)).reshape(-1, block * block)
    mx, my = xw.mean(1), yw.mean(1)
    vx, vy = xw.var(1), yw.var(1)
    cxy = ((xw - mx[:, None]) * (yw - my[:, None])).mean(1)
    q = np.ones_like(mx)
    for i in range(q.size):
        var_sum, mean_sq = vx[i] + vy[i], mx[i] ** 2 + my[i] ** 2
        if var_sum > 1e-9 and mean_sq > 1e-9:
            q[i] = 4 * cxy[i] * mx[i] * my[i] / (var_sum * mean_sq)
        elif mean_sq > 1e-9:
            q[i] = 2 * mx[i] * my[i] / mean_sq
        elif var_sum > 1e-9:
            q[i] = 2 * cxy[i] / var_sum
    return q.mean()


def _vif_torchmetrics(pred, ref):
    return float(
        visual_information_fidelity(
            torch.from_numpy(pred.astype(np.float64))[None, None],
            torch.from_numpy(ref.astype(np.float64))[None, None],
            sigma_n_sq=2.0,
        )
    )


def test_identical_images_score_one_and_psnr_is_inf():
    ref = _reference_image()
    values = metrics.image_metrics(ref, ref)
    assert values["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert values["uqi"] == pytest.approx(1.0, abs=1e-12)
    assert values["vif"] == pytest.approx(1.0, abs=1e-6)
    assert values["psnr"] == math.inf  # documented: identical images give inf, never a cap
    assert values["mae"] == values["mse"] == values["rmse"] == 0.0


@pytest.mark.parametrize("kind", ["noise", "blur", "contrast", "shift"])
def test_distorted_images_match_independent_implementations(kind):
    ref = _reference_image()
    pred = _distorted(kind, ref)
    values = metrics.image_metrics(pred, ref)
    assert values["psnr"] == pytest.approx(_psnr_formula(pred, ref), abs=1e-3)
    assert values["ssim"] == pytest.approx(_ssim_windows(pred, ref), abs=1e-3)
    assert values["uqi"] == pytest.approx(_uqi_windows(pred, ref), abs=1e-3)
    assert values["vif"] == pytest.approx(_vif_torchmetrics(pred, ref), abs=1e-3)
    diff = pred.astype(float) - ref.astype(float)
    assert values["mae"] == pytest.approx(np.abs(diff).mean())
    assert values["rmse"] == pytest.approx(np.sqrt((diff**2).mean()))
    assert values["ssim"] < 1 and values["uqi"] < 1 and values["vif"] < 1


def test_distortions_rank_sensibly():
    ref = _reference_image()
    mild = np.clip(ref.astype(float) + np.random.default_rng(2).normal(0, 3, ref.shape), 0, 255).astype(np.uint8)
    strong = _distorted("noise", ref)
    assert metrics.vif(mild, ref) > metrics.vif(strong, ref)
    assert metrics.uqi(mild, ref) > metrics.uqi(strong, ref)


def test_vif_is_not_scale_invariant_so_data_must_be_0_255():
    ref = _reference_image().astype(float)
    pred = _distorted("blur", _reference_image()).astype(float)
    assert metrics.vif(pred, ref) != pytest.approx(metrics.vif(pred / 255, ref / 255), abs=1e-2)


def test_vif_small_images_give_nan():
    tiny = np.zeros((32, 32), np.uint8)
    assert math.isnan(metrics.vif(tiny, tiny))


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        metrics.image_metrics(np.zeros((64, 64)), np.zeros((64, 60)))


def test_hu_metrics_known_mae_and_clipping():
    ref = np.zeros((32, 32))
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    pred = np.where(mask, 100.0, 5000.0)  # outside the mask errors are huge but must be ignored
    values = metrics.hu_metrics(pred, ref, mask, [-1024, 3000])
    assert values["hu_mae"] == pytest.approx(100.0)
    assert values["hu_psnr"] == pytest.approx(10 * math.log10(4024.0**2 / 100.0**2))
    assert 0 < values["hu_ssim"] < 1
    # Clipping: 5000 HU counts as 3000, -3000 as -1024.
    clipped = metrics.hu_metrics(np.full((32, 32), 5000.0), np.full((32, 32), 1000.0), np.ones((32, 32), bool), [-1024, 3000])
    assert clipped["hu_mae"] == pytest.approx(2000.0)
    same = metrics.hu_metrics(ref, ref, mask, [-1024, 3000])
    assert same["hu_mae"] == 0 and same["hu_psnr"] == math.inf and same["hu_ssim"] == pytest.approx(1.0)


def test_png_to_hu_inverts_the_window():
    png = np.array([0, 255, 51], dtype=np.uint8)
    assert from_uint8(png, -1024, 2000).tolist() == pytest.approx([-1024, 2000, -1024 + 0.2 * 3024])


def test_hu_clip_must_be_ordered():
    with pytest.raises(ValueError, match="hu_clip"):
        metrics.hu_metrics(np.zeros((8, 8)), np.zeros((8, 8)), np.ones((8, 8), bool), [3000, -1024])


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_evaluate_model_tables(tmp_path):
    """Two test patients, two slices each; the CT prediction is off by a known 8-bit step."""
    rows = []
    for patient in ["p1", "p2", "p0"]:
        for z in (3, 5):
            ct = np.minimum(_reference_image(64, seed=z), 200)  # +10 never saturates
            mr = 255 - ct
            mask = np.where(ct > 0, 255, 0).astype(np.uint8)
            name = f"{patient}_z{z:03d}.png"
            paths = {k: tmp_path / "slices" / patient / k / name for k in ("mr", "ct", "mask")}
            for key, image in zip(("mr", "ct", "mask"), (mr, ct, mask)):
                _write_png(paths[key], image)
            if patient != "p0":
                _write_png(tmp_path / "pred" / "mr2ct" / name, np.clip(ct.astype(int) + 10, 0, 255).astype(np.uint8))
                _write_png(tmp_path / "pred" / "ct2mr" / name, mr)
            rows.append({"patient": patient, "slice": z, "split": "train" if patient == "p0" else "test",
                         "mr_png": str(paths["mr"]), "ct_png": str(paths["ct"]), "mask_png": str(paths["mask"]),
                         "ct_lo_hu": -1000.0, "ct_hi_hu": 1550.0})
    slices, patients = evaluate_model("scratch", pd.DataFrame(rows), tmp_path / "pred", [-1024, 3000])
    assert len(slices) == 8 and set(slices["direction"]) == {"mr2ct", "ct2mr"}
    ct2mr = slices[slices["direction"] == "ct2mr"]
    assert (ct2mr["psnr"] == math.inf).all() and ct2mr["hu_mae"].isna().all()
    mr2ct = slices[slices["direction"] == "mr2ct"]
    # 10 PNG steps of (1550 + 1000) / 255 HU each = 100 HU everywhere in the mask.
    assert mr2ct["hu_mae"].to_numpy() == pytest.approx(100.0)
    assert list(patients["patient"]) == ["p1", "p2"] and (patients["n_slices"] == 2).all()
    assert patients["hu_mae"].to_numpy() == pytest.approx(100.0)


def test_evaluate_model_missing_prediction_names_the_file(tmp_path):
    ct = _reference_image(64)
    _write_png(tmp_path / "ct.png", ct)
    manifest = pd.DataFrame([{"patient": "p", "slice": 1, "split": "test", "mr_png": str(tmp_path / "ct.png"),
                              "ct_png": str(tmp_path / "ct.png"), "mask_png": str(tmp_path / "ct.png"),
                              "ct_lo_hu": -1024.0, "ct_hi_hu": 2000.0}])
    with pytest.raises(FileNotFoundError, match="ct.png"):
        evaluate_model("m", manifest, tmp_path / "missing", [-1024, 3000])
