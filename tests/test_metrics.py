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
from mrct.evaluation.hu_metrics import hu_metrics
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
    values = hu_metrics(pred, ref, mask, [-1024, 3000])
    assert values["hu_mae"] == pytest.approx(100.0)
    assert values["hu_psnr"] == pytest.approx(10 * math.log10(4024.0**2 / 100.0**2))
    assert 0 < values["hu_ssim"] < 1
    # MAE is unclipped (SynthRAD2023); PSNR clips 5000 HU to 3000: an error of 2000 HU.
    clipped = hu_metrics(np.full((32, 32), 5000.0), np.full((32, 32), 1000.0), np.ones((32, 32), bool), [-1024, 3000])
    assert clipped["hu_mae"] == pytest.approx(4000.0)
    assert clipped["hu_psnr"] == pytest.approx(10 * math.log10(4024.0**2 / 2000.0**2))
    same = hu_metrics(ref, ref, mask, [-1024, 3000])
    assert same["hu_mae"] == 0 and same["hu_psnr"] == math.inf and same["hu_ssim"] == pytest.approx(1.0)


def test_png_to_hu_inverts_the_window():
    png = np.array([0, 255, 51], dtype=np.uint8)
    assert from_uint8(png, -1024, 2000).tolist() == pytest.approx([-1024, 2000, -1024 + 0.2 * 3024])


def test_hu_clip_must_be_ordered():
    with pytest.raises(ValueError, match="hu_clip"):
        hu_metrics(np.zeros((8, 8)), np.zeros((8, 8)), np.ones((8, 8), bool), [3000, -1024])


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
    slices = evaluate_model("scratch", pd.DataFrame(rows), tmp_path / "pred", [-1024, 3000])
    assert len(slices) == 8 and set(slices["direction"]) == {"mr2ct", "ct2mr"}
    ct2mr = slices[slices["direction"] == "ct2mr"]
    assert (ct2mr["psnr"] == math.inf).all() and ct2mr["hu_mae"].isna().all()
    mr2ct = slices[slices["direction"] == "mr2ct"]
    # 10 PNG steps of (1550 + 1000) / 255 HU each = 100 HU everywhere in the mask.
    assert mr2ct["hu_mae"].to_numpy() == pytest.approx(100.0)
    # Masked metrics beside the whole-slice ones: +10 inside the head, and +10 in the air too.
    assert (mr2ct["mae_masked"] == 10.0).all() and (mr2ct["mae"] == 10.0).all()
    assert (ct2mr["psnr_masked"] == math.inf).all() and (ct2mr["ssim_masked"] == 1.0).all()
    assert list(slices.columns[4:18]) == [*metrics.IMAGE_METRICS, *metrics.MASKED_METRICS]


def test_evaluate_16_bit_slices_on_8_bit_renderings_and_hu_from_16_bits(tmp_path):
    """A synthetic CT 3 HU off everywhere: below an 8-bit step (10 HU here), above a 16-bit one."""
    lo, hi = -1000.0, 1550.0
    rows = []
    for z in (1, 2):
        ref8 = _reference_image(64, seed=z)
        ct_hu = lo + 20 + ref8.astype(float) / 255 * (hi - lo - 40) + np.random.default_rng(z).uniform(-4, 4, ref8.shape)
        levels = {name: np.rint(np.clip((hu - lo) / (hi - lo), 0, 1) * 65535).astype(np.uint16)
                  for name, hu in (("truth", ct_hu), ("pred", ct_hu + 3.0))}
        name = f"p_z{z:03d}.png"
        paths = {k: tmp_path / "slices" / k / name for k in ("mr", "ct", "mask")}
        _write_png(paths["ct"], levels["truth"])
        _write_png(paths["mr"], levels["truth"])
        _write_png(paths["mask"], np.full(ref8.shape, 255, np.uint8))
        _write_png(tmp_path / "pred" / "mr2ct" / name, levels["pred"])
        _write_png(tmp_path / "pred" / "ct2mr" / name, levels["truth"])
        rows.append({"patient": "p", "slice": z, "split": "test", "mr_png": str(paths["mr"]),
                     "ct_png": str(paths["ct"]), "mask_png": str(paths["mask"]), "ct_lo_hu": lo, "ct_hi_hu": hi,
                     "hu": ct_hu})
    slices = evaluate_model("m", pd.DataFrame(rows).drop(columns="hu"), tmp_path / "pred", [-1024, 3000])
    mr2ct = slices[slices["direction"] == "mr2ct"].reset_index(drop=True)
    # HU metrics see the 3 HU (16-bit: 0.04 HU per level) ...
    assert mr2ct["hu_mae"].to_numpy() == pytest.approx(3.0, abs=0.05)
    # ... the 8-bit ones see 8-bit images of the stored window, as 8-bit slices would have held them
    for row, values in zip(rows, mr2ct.itertuples(), strict=True):
        to8 = [np.clip(np.rint((hu - lo) / (hi - lo) * 255), 0, 255) for hu in (row["hu"] + 3.0, row["hu"])]
        assert values.mae == pytest.approx(np.mean(np.abs(to8[0] - to8[1])), abs=0.01)
        assert 0 < values.mae < 1
    # data range 255 on 16-bit data would be wrong: the 8-bit metrics refuse it
    with pytest.raises(ValueError, match="expected 8-bit data"):
        metrics.psnr(np.zeros((16, 16), np.uint16), np.zeros((16, 16), np.uint16))
    with pytest.raises(ValueError, match="expected 8-bit data"):
        metrics.vif_batch(np.full((1, 48, 48), 300.0), np.zeros((1, 48, 48)))


def test_evaluate_model_missing_prediction_names_the_file(tmp_path):
    ct = _reference_image(64)
    _write_png(tmp_path / "ct.png", ct)
    manifest = pd.DataFrame([{"patient": "p", "slice": 1, "split": "test", "mr_png": str(tmp_path / "ct.png"),
                              "ct_png": str(tmp_path / "ct.png"), "mask_png": str(tmp_path / "ct.png"),
                              "ct_lo_hu": -1024.0, "ct_hi_hu": 2000.0}])
    with pytest.raises(FileNotFoundError, match="ct.png"):
        evaluate_model("m", manifest, tmp_path / "missing", [-1024, 3000])


# --- masked metrics ------------------------------------------------------------------------------


def _small_head_case(size: int = 64):
    """A head covering about a third of the slice (as on padded slices), its mask, and two predictions.

    ``noisy`` has a noisier head, ``better`` a visibly better one; both have exactly-0 air.
    """
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    mask = (xx**2 / 0.09 + yy**2 / 0.12) < 1
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), 1.5) * 200
    ref = np.clip(np.rint(np.where(mask, 130 + 50 * np.cos(7 * xx) + texture, 0)), 0, 255).astype(np.uint8)

    def degrade(sigma):
        head = np.clip(np.rint(ref + rng.normal(0, sigma, ref.shape)), 1, 255)
        return np.where(mask, head, 0).astype(np.uint8)

    return ref, mask, degrade(25), degrade(6)


def _with_air(image, mask, level):
    return np.where(mask, image, level).astype(np.uint8)


def test_background_offset_moves_whole_slice_ssim_uqi_but_not_the_masked_ones():
    ref, mask, noisy, _ = _small_head_case()
    assert 0.25 < mask.mean() < 0.45
    before = metrics.image_metrics(noisy, ref, mask)
    after = metrics.image_metrics(_with_air(noisy, mask, 1), ref, mask)
    for name in ("ssim", "uqi", "vif"):
        assert abs(after[f"{name}_masked"] - before[f"{name}_masked"]) < 0.01, name
    for name in ("psnr", "mae", "mse", "rmse"):  # pixel-wise: the air is not counted at all
        assert after[f"{name}_masked"] == before[f"{name}_masked"], name
    # The whole-slice values are still reported, and the same gray level moves them a lot.
    assert before["uqi"] - after["uqi"] > 0.3
    assert before["ssim"] - after["ssim"] > 0.05


def test_masked_metrics_rank_heads_where_whole_slice_ranks_the_air():
    """The issue's case: a noisier head with 0 air beats a better head with air at 1 on whole-slice UQI."""
    ref, mask, noisy, better = _small_head_case()
    noisy_dark = metrics.image_metrics(noisy, ref, mask)
    better_lit = metrics.image_metrics(_with_air(better, mask, 1), ref, mask)
    assert noisy_dark["uqi"] > better_lit["uqi"]  # the problem: whole-slice UQI prefers the worse head
    assert better_lit["uqi_masked"] > noisy_dark["uqi_masked"] and better_lit["ssim_masked"] > noisy_dark["ssim_masked"]


@pytest.mark.parametrize("kind", ["noise", "blur", "contrast", "shift"])
def test_mask_covering_the_whole_image_equals_the_whole_slice_value(kind):
    ref = _reference_image()
    pred = _distorted(kind, ref)
    values = metrics.image_metrics(pred, ref, np.ones(ref.shape, bool))
    for name in metrics.IMAGE_METRICS:
        assert values[f"{name}_masked"] == pytest.approx(values[name], rel=1e-12), name


def test_masked_pixel_metrics_by_hand():
    ref = np.zeros((32, 32), np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[4:14, 6:16] = True  # 100 pixels
    pred = np.full((32, 32), 200, np.uint8)  # the air is far off, and must not count
    pred[mask] = 3
    pred[4, 6] = 13  # one pixel off by 13 instead of 3
    values = metrics.image_metrics(pred, ref, mask)
    mae, mse = (99 * 3 + 13) / 100, (99 * 9 + 169) / 100
    assert values["mae_masked"] == pytest.approx(mae)
    assert values["mse_masked"] == pytest.approx(mse)
    assert values["rmse_masked"] == pytest.approx(math.sqrt(mse))
    assert values["psnr_masked"] == pytest.approx(10 * math.log10(255**2 / mse))
    assert values["mae"] > 100  # whole slice: dominated by the air


def _ssim_map_windows(pred, ref, data_range=255.0):
    """The SSIM map of ``_ssim_windows`` (explicit Gaussian windows), full size."""
    coords = np.arange(11) - 5
    weight = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 1.5**2))
    weight /= weight.sum()

    def local_mean(image):
        return np.einsum("ijkl,kl->ij", sliding_window_view(np.pad(image, 5, mode="symmetric"), (11, 11)), weight)

    x, y = ref.astype(float), pred.astype(float)
    mx, my = local_mean(x), local_mean(y)
    vx, vy, cxy = local_mean(x * x) - mx**2, local_mean(y * y) - my**2, local_mean(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def _uqi_masked_windows(pred, ref, mask, block=8):
    """Mean Q over the windows whose centre pixel (top-left + block // 2) is in the mask, window by window."""
    values = []
    for i in range(ref.shape[0] - block + 1):
        for j in range(ref.shape[1] - block + 1):
            if mask[i + block // 2, j + block // 2]:
                values.append(_uqi_windows(pred[i : i + block, j : j + block], ref[i : i + block, j : j + block], block))
    return float(np.mean(values))


def _vif_maps_2d(pred, ref, sigma_nsq=2.0):
    """Per-scale VIF information maps with full 2-D 'valid' convolutions (the authors' vifp_mscale).

    Also carries the row and column coordinate ramps through the same filtering: a normalised
    symmetric kernel keeps a linear ramp linear, so each map position gets the full-resolution
    coordinates of its window's centre without any bookkeeping of offsets and strides.
    """
    from scipy.signal import convolve2d

    eps = 1e-10
    ref, dist = ref.astype(float), pred.astype(float)
    rows, cols = np.mgrid[: ref.shape[0], : ref.shape[1]].astype(float)
    maps = []
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        g = np.exp(-((np.arange(n) - (n - 1) / 2) ** 2) / (2 * (n / 5.0) ** 2))
        win = np.outer(g, g) / np.outer(g, g).sum()

        def filt(image, win=win):
            return convolve2d(image, np.rot90(win, 2), mode="valid")

        if scale > 1:
            ref, dist = filt(ref)[::2, ::2], filt(dist)[::2, ::2]
            rows, cols = filt(rows)[::2, ::2], filt(cols)[::2, ::2]
        mu1, mu2 = filt(ref), filt(dist)
        s1, s2 = filt(ref * ref) - mu1**2, filt(dist * dist) - mu2**2
        s12 = filt(ref * dist) - mu1 * mu2
        s1, s2 = np.maximum(s1, 0), np.maximum(s2, 0)
        g_ = s12 / (s1 + eps)
        sv = s2 - g_ * s12
        g_[s1 < eps], sv[s1 < eps], s1[s1 < eps] = 0, s2[s1 < eps], 0
        g_[s2 < eps], sv[s2 < eps] = 0, 0
        sv[g_ < 0], g_[g_ < 0] = s2[g_ < 0], 0
        sv = np.maximum(sv, eps)
        num = np.log10(1 + g_**2 * s1 / (sv + sigma_nsq))
        den = np.log10(1 + s1 / sigma_nsq)
        maps.append((num, den, np.rint(filt(rows)).astype(int), np.rint(filt(cols)).astype(int)))
    return maps


def _vif_masked_2d(pred, ref, mask):
    num = den = 0.0
    for n_map, d_map, rows, cols in _vif_maps_2d(pred, ref):
        inside = mask[rows, cols]
        num += n_map[inside].sum()
        den += d_map[inside].sum()
    return num / den


@pytest.mark.parametrize("kind", ["noise", "blur", "shift"])
def test_masked_windowed_metrics_match_independent_implementations(kind):
    ref = _reference_image()
    pred = _distorted(kind, ref)
    mask = np.zeros(ref.shape, bool)
    mask[10:50, 14:44] = True  # a box that cuts through head and air
    values = metrics.image_metrics(pred, ref, mask)
    inner = (slice(5, -5), slice(5, -5))
    assert values["ssim_masked"] == pytest.approx(_ssim_map_windows(pred, ref)[inner][mask[inner]].mean(), abs=1e-3)
    assert values["uqi_masked"] == pytest.approx(_uqi_masked_windows(pred, ref, mask), abs=1e-9)
    whole_2d = _vif_masked_2d(pred, ref, np.ones(ref.shape, bool))
    assert whole_2d == pytest.approx(_vif_torchmetrics(pred, ref), abs=1e-6)  # the test's own VIF is right
    assert values["vif_masked"] == pytest.approx(_vif_masked_2d(pred, ref, mask), rel=1e-9)
    assert values["vif_masked"] != pytest.approx(values["vif"], abs=1e-3)  # the mask does change it


def test_vif_batch_masked_matches_one_by_one():
    refs = np.stack([_reference_image(64, seed=s) for s in range(3)])
    preds = np.stack([_distorted(k, r) for k, r in zip(["noise", "blur", "shift"], refs, strict=True)])
    masks = refs > 0
    whole, masked = metrics.vif_batch_masked(preds, refs, masks)
    assert whole == pytest.approx(metrics.vif_batch(preds, refs), rel=1e-12)
    assert masked == pytest.approx([metrics.vif(p, r, mask=m) for p, r, m in zip(preds, refs, masks, strict=True)], rel=1e-12)


def test_empty_mask_gives_nan_and_a_wrong_mask_shape_is_rejected():
    ref = _reference_image()
    values = metrics.image_metrics(_distorted("noise", ref), ref, np.zeros(ref.shape, bool))
    assert all(math.isnan(values[f"{name}_masked"]) for name in metrics.IMAGE_METRICS)
    assert not math.isnan(values["ssim"])
    with pytest.raises(ValueError, match="mask"):
        metrics.image_metrics(ref, ref, np.ones((64, 60), bool))


def test_evaluate_model_mask_of_the_wrong_shape_names_the_file(tmp_path):
    ct = _reference_image(64)
    _write_png(tmp_path / "ct.png", ct)
    _write_png(tmp_path / "mask.png", np.zeros((32, 32), np.uint8))
    _write_png(tmp_path / "pred" / "mr2ct" / "ct.png", ct)
    manifest = pd.DataFrame([{"patient": "p", "slice": 1, "split": "test", "mr_png": str(tmp_path / "ct.png"),
                              "ct_png": str(tmp_path / "ct.png"), "mask_png": str(tmp_path / "mask.png"),
                              "ct_lo_hu": -1024.0, "ct_hi_hu": 2000.0}])
    with pytest.raises(ValueError, match="mask.png"):
        evaluate_model("m", manifest, tmp_path / "pred", [-1024, 3000])
