"""SynthRAD2025's masked MS-SSIM and tissue overlap (Dice, HD95) of synthetic CT volumes.

The MS-SSIM reference below is written from the definition of SynthRAD2025's evaluation code
(github.com/SynthRAD2025/evaluation, image_metrics.py), not from mrct's: local statistics with
scipy.ndimage's uniform filter (mrct uses running sums), down-sampling with a 2-wide constant-mode
uniform filter (mrct sums shifted copies), padding and cropping by explicit index arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from mrct.evaluation.hu_metrics import MS_SSIM_WEIGHTS, ms_ssim_hu, ms_ssim_min_size
from mrct.evaluation.tissue import dice, hd95, tissue_overlap

RANGE_2025 = (-1024.0, 3071.0)
TISSUE_HU = {"air_max": -200.0, "bone_min": 300.0}


def reference_ms_ssim(ct: np.ndarray, sct: np.ndarray, mask: np.ndarray, hu_range=RANGE_2025) -> float:
    lo, hi = hu_range
    r = hi - lo
    mask = (mask > 0).astype(np.float64)
    a = np.where(mask == 0, lo, np.clip(ct, lo, hi)) - lo
    b = np.where(mask == 0, lo, np.clip(sct, lo, hi)) - lo
    pads = []
    for n in a.shape:
        missing = max(97 - n, 0)
        pads.append((missing // 2, missing - missing // 2))
    a, b, mask = (np.pad(v, pads, mode="edge") for v in (a, b, mask))
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    means = []
    for weight in MS_SSIM_WEIGHTS:
        mu_a, mu_b = ndimage.uniform_filter(a, 7), ndimage.uniform_filter(b, 7)
        f = 343.0 / 342.0
        var_a = f * (ndimage.uniform_filter(a**2, 7) - mu_a**2)
        var_b = f * (ndimage.uniform_filter(b**2, 7) - mu_b**2)
        cov = f * (ndimage.uniform_filter(a * b, 7) - mu_a * mu_b)
        sd_a, sd_b = np.sqrt(np.maximum(var_a, 0)), np.sqrt(np.maximum(var_b, 0))
        lum = np.maximum((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1), 0)
        con = np.maximum((2 * sd_a * sd_b + c2) / (var_a + var_b + c2), 0)
        struct = np.maximum((cov + c2 / 2) / (sd_a * sd_b + c2 / 2), 0)
        ssim_map = (lum * con * struct) ** weight
        core = (slice(3, -3),) * 3
        means.append(ssim_map[core][mask[core] > 0].mean())
        a, b = (ndimage.uniform_filter(v, 2, mode="constant", cval=0.0)[::2, ::2, ::2] for v in (a, b))
        mask = mask[::2, ::2, ::2]
    return float(np.prod([min(max(m, 0.0), 1.0) for m in means]))


def head(shape=(40, 56, 50), seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth ellipsoidal head: brain, a bone shell, an air pocket, background; a noisy blurred sCT."""
    z, y, x = np.indices(shape, dtype=np.float64)
    c = [(n - 1) / 2 for n in shape]
    radius = np.sqrt(((z - c[0]) / (0.42 * shape[0])) ** 2 + ((y - c[1]) / (0.42 * shape[1])) ** 2
                     + ((x - c[2]) / (0.42 * shape[2])) ** 2)
    ct = np.where(radius < 1.0, 40.0, -1000.0)
    ct = np.where((radius >= 0.85) & (radius < 1.0), 1200.0, ct)
    ct = np.where(np.sqrt((z - c[0]) ** 2 + (y - c[1] - 8) ** 2 + (x - c[2]) ** 2) < 4, -900.0, ct)
    rng = np.random.default_rng(seed)
    ct = ct + rng.normal(0, 10, shape)
    sct = ndimage.gaussian_filter(ct, 1.0) + rng.normal(0, 30, shape)
    mask = radius < 1.05
    return ct, sct, mask


def test_ms_ssim_equals_an_independent_synthrad2025_implementation():
    ct, sct, mask = head()
    got = ms_ssim_hu(sct, ct, mask, RANGE_2025)
    expected = reference_ms_ssim(ct, sct, mask)
    assert got == pytest.approx(expected, rel=1e-6)
    assert 0.3 < got < 0.999
    # A side longer than 97 is not padded; an odd shortfall puts the extra voxel after.
    long_ct, long_sct, long_mask = head(shape=(20, 101, 33), seed=1)
    assert ms_ssim_hu(long_sct, long_ct, long_mask, RANGE_2025) == pytest.approx(
        reference_ms_ssim(long_ct, long_sct, long_mask), rel=1e-6)


def test_ms_ssim_of_identical_volumes_is_one_and_drops_with_error():
    ct, sct, mask = head()
    assert ms_ssim_hu(ct, ct, mask, RANGE_2025) == pytest.approx(1.0, abs=1e-12)
    worse = ms_ssim_hu(sct + 200.0, ct, mask, RANGE_2025)
    assert worse < ms_ssim_hu(sct, ct, mask, RANGE_2025) < 1.0
    # Outside the mask nothing counts: junk there leaves the value as it was.
    junk = np.where(mask, sct, 2500.0)
    assert ms_ssim_hu(junk, ct, mask, RANGE_2025) == pytest.approx(ms_ssim_hu(sct, ct, mask, RANGE_2025), rel=1e-12)
    assert math.isnan(ms_ssim_hu(sct, ct, np.zeros_like(mask), RANGE_2025))


def test_ms_ssim_minimum_size_holds_one_window_at_the_coarsest_scale():
    n = ms_ssim_min_size()
    assert n == 97
    for _ in range(len(MS_SSIM_WEIGHTS) - 1):
        n = math.ceil(n / 2)
    assert n == 7


# -- tissue overlap ----------------------------------------------------------------------------


def skull(shape=(36, 44, 44), thin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A spherical head: brain (35 HU) inside a skull shell 6 voxels thick (1500 HU), air around.

    ``thin`` voxels of the shell's inner table become brain.
    """
    z, y, x = np.indices(shape, dtype=np.float64)
    c = [(n - 1) / 2 for n in shape]
    r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    outer, inner = 16.0, 10.0 + thin
    ct = np.where(r < outer, 35.0, -1000.0)
    ct = np.where((r >= inner) & (r < outer), 1500.0, ct)
    return ct, r < outer + 1


def test_identical_volumes_overlap_perfectly():
    ct, mask = skull()
    values = tissue_overlap(ct, ct, mask, (1.0, 1.0, 1.0), TISSUE_HU)
    assert values["dice_air"] == values["dice_bone"] == values["dice_soft"] == 1.0
    assert values["hd95_air_mm"] == values["hd95_bone_mm"] == values["hd95_soft_mm"] == 0.0
    # a mask that holds no air in either volume: undefined, not perfect
    values = tissue_overlap(ct, ct, mask & (ct > -500), (1.0, 1.0, 1.0), TISSUE_HU)
    assert math.isnan(values["dice_air"]) and math.isnan(values["hd95_air_mm"]) and values["dice_bone"] == 1.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.5, 1.5)])
def test_a_skull_thinned_by_two_voxels_loses_bone_dice_and_moves_hd95_by_two_voxels(spacing):
    ct, mask = skull()
    thinned, _ = skull(thin=2)
    values = tissue_overlap(thinned, ct, mask, spacing, TISSUE_HU)
    bone_real, bone_thin = ct >= 300, thinned >= 300
    assert values["dice_bone"] == pytest.approx(2 * bone_thin.sum() / (bone_real.sum() + bone_thin.sum()))
    assert 0.5 < values["dice_bone"] < 0.9
    # The inner surface moved 2 voxels outwards, the outer one stayed: the 95th percentile sees the
    # inner table, about 2 voxels (between 2 and 2 x the largest spacing, voxel geometry).
    assert 2 * min(spacing) - 0.5 <= values["hd95_bone_mm"] <= 2 * max(spacing) + 0.5
    assert values["hd95_soft_mm"] == pytest.approx(values["hd95_bone_mm"], rel=0.3)
    iso = tissue_overlap(thinned, ct, mask, (1.0, 1.0, 1.0), TISSUE_HU)["hd95_bone_mm"]
    if spacing == (1.0, 1.0, 1.0):
        assert iso == pytest.approx(2.0, abs=0.3)


def test_hd95_is_in_millimetres_and_ignores_a_few_stray_voxels():
    a = np.zeros((30, 30, 30), bool)
    a[5:25, 5:25, 5:25] = True
    b = np.roll(a, 3, axis=2)
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert hd95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(7.5)
    stray = a.copy()
    stray[0, 0, 0] = True  # one voxel 8.7 voxels away: the maximum, not the 95th percentile
    assert hd95(stray, a, (1.0, 1.0, 1.0)) == 0.0
    assert dice(a, b) == pytest.approx(2 * 20 * 20 * 17 / (2 * 8000))
    assert math.isnan(hd95(a, np.zeros_like(a), (1.0, 1.0, 1.0))) and dice(a, np.zeros_like(a)) == 0.0


def test_tissue_thresholds_are_checked():
    ct, mask = skull(shape=(12, 12, 12))
    with pytest.raises(ValueError, match="air_max < bone_min"):
        tissue_overlap(ct, ct, mask, (1.0, 1.0, 1.0), {"air_max": 400.0, "bone_min": 300.0})
    with pytest.raises(ValueError, match="missing"):
        tissue_overlap(ct, ct, mask, (1.0, 1.0, 1.0), {"air_max": -200.0})
