"""Hounsfield-unit metrics of synthetic CTs: MAE, PSNR and SSIM as SynthRAD2023 defines them.

SynthRAD2023 definitions, following the challenge's published evaluation code
(``functions/image_metrics.py`` of github.com/SynthRAD2023/metrics, commit fe7e385, July 2023):
MAE over the mask's voxels, **unclipped**; PSNR over the mask's voxels after clipping both
images to ``hu_clip`` ([-1024, 3000]), data range 4024; SSIM on the whole array (3-D for a
volume: scikit-image's default 7x7x7 uniform window, sample covariance, K1 0.01, K2 0.03) after
the same clip, with every voxel outside the mask set to -1024 and values shifted by +1024, data
range 4024; the SSIM map and the mask are both cropped by 3 voxels at every face (no erosion),
and the map is averaged over the cropped mask. Deviation: the challenge code casts to float32
(and scikit-image then computes in float32); here everything is float64, which changed the
three values by less than 1e-7 relative on a 2 mm demo head. (Its ``score_patient`` hands the
SimpleITK mask image, not its array, to ``ssim``, which fails with SimpleITK 2.5; ``ssim`` is
followed as written, on the mask array.) The volume metrics (:func:`volume_hu_metrics`) are the SynthRAD2023
numbers. :func:`hu_metrics` on a 2-D slice is the same definition per slice; in the evaluation
those per-slice values come from 8-bit PNGs (windowed, quantised) and are labelled per-slice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

#: Per-slice HU metrics (from the 8-bit PNGs; labelled per-slice in the tables).
HU_METRICS = ["hu_mae", "hu_psnr", "hu_ssim"]


def _check_clip(hu_clip: Sequence[float]) -> tuple[float, float]:
    lo, hi = float(hu_clip[0]), float(hu_clip[1])
    if not lo < hi:
        raise ValueError(f"hu_clip: expected lo < hi, got {list(hu_clip)}")
    return lo, hi


#: skimage's default SSIM window is 7 wide; its own mean crops (7 - 1) // 2 = 3 at each face, and
#: the SynthRAD2023 code crops the masked mean the same way.
SSIM_CROP = 3
SSIM_DEFAULT_WINDOW = 7


def hu_metrics(pred_hu: np.ndarray, ref_hu: np.ndarray, mask: np.ndarray, hu_clip: Sequence[float]) -> dict[str, float]:
    """MAE, PSNR and SSIM in HU inside ``mask`` as SynthRAD2023 defines them (module docstring).

    Works on a 2-D slice or a 3-D volume (SSIM is then 3-D, as in the challenge). Every side must
    be at least 7 (scikit-image's window); NaN SSIM when no mask voxel is left after the crop.
    """
    lo, hi = _check_clip(hu_clip)
    pred = np.asarray(pred_hu, np.float64)
    ref = np.asarray(ref_hu, np.float64)
    mask = np.asarray(mask) > 0
    if pred.shape != ref.shape or mask.shape != ref.shape or ref.ndim not in (2, 3):
        raise ValueError(
            f"expected 2-D or 3-D prediction, reference and mask of one shape, got {pred.shape}, {ref.shape}, {mask.shape}"
        )
    if not mask.any():
        return {"hu_mae": math.nan, "hu_psnr": math.nan, "hu_ssim": math.nan}
    if min(ref.shape) < SSIM_DEFAULT_WINDOW:
        raise ValueError(f"HU SSIM needs every side >= {SSIM_DEFAULT_WINDOW} (scikit-image's window), got {ref.shape}")
    data_range = hi - lo
    mae = float(np.abs(pred[mask] - ref[mask]).mean())  # unclipped, as the challenge
    pred_c, ref_c = np.clip(pred, lo, hi), np.clip(ref, lo, hi)
    mse = float(np.mean((pred_c[mask] - ref_c[mask]) ** 2))
    return {
        "hu_mae": mae,
        "hu_psnr": math.inf if mse == 0 else float(10.0 * np.log10(data_range**2 / mse)),
        "hu_ssim": _masked_ssim(pred_c, ref_c, mask, lo, data_range),
    }


def _masked_ssim(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray, background: float, data_range: float) -> float:
    """SynthRAD2023's masked SSIM: background set to the clip's low end, shift to >= 0, skimage's
    default window over the whole array, then the map's mean over the mask, both cropped by 3.

    Only the map at the kept mask voxels is averaged, and each of those values depends on its
    7-wide neighbourhood alone. So the map is computed on the mask's bounding box grown by 3
    voxels (clamped to the array, where the filter's reflection then happens at the same faces):
    the same values, in the same order, for a fraction of the time when the head does not fill
    the field of view. Tests compare it with the whole-array computation.
    """
    kept = np.zeros_like(mask)
    inner = tuple(slice(SSIM_CROP, n - SSIM_CROP) for n in mask.shape)
    kept[inner] = mask[inner]
    if not kept.any():
        return math.nan
    half = (SSIM_DEFAULT_WINDOW - 1) // 2
    box = tuple(
        slice(max(int(idx.min()) - half, 0), min(int(idx.max()) + half + 1, n))
        for idx, n in zip(np.nonzero(kept), mask.shape, strict=True)
    )
    pred = np.where(mask[box], pred[box], background) - background
    ref = np.where(mask[box], ref[box], background) - background
    ssim_map = structural_similarity(ref, pred, data_range=data_range, full=True)[1]
    return float(ssim_map[kept[box]].mean())


#: Column names of the volume metrics (results/metrics/{model}_volumes.csv, an interface).
VOLUME_METRICS = ["mae_hu", "psnr_hu", "ssim_hu"]


def volume_hu_metrics(sct_hu: np.ndarray, ct_hu: np.ndarray, mask: np.ndarray,
                      hu_clip: Sequence[float]) -> dict[str, float]:
    """SynthRAD2023's MAE, PSNR and SSIM of a synthetic CT volume in float HU against the CT."""
    if np.ndim(ct_hu) != 3:
        raise ValueError(f"expected 3-D volumes [slice, row, col], got shape {np.shape(ct_hu)}")
    values = hu_metrics(sct_hu, ct_hu, mask, hu_clip)
    return {"mae_hu": values["hu_mae"], "psnr_hu": values["hu_psnr"], "ssim_hu": values["hu_ssim"]}
