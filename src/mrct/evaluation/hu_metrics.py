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

:func:`ms_ssim_hu` is SynthRAD2025's masked multi-scale SSIM (its ``image_metrics.py``, github.com/
SynthRAD2025/evaluation), beside SynthRAD2023's SSIM; see its docstring for the definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

from mrct.evaluation.tissue import TISSUE_METRICS

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


#: SynthRAD2025's MS-SSIM: the five scale weights of Wang et al. 2003 (eq. 7 and section 3.2).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_min_size(levels: int = len(MS_SSIM_WEIGHTS), window: int = SSIM_DEFAULT_WINDOW) -> int:
    """Smallest side that still holds one ``window`` after ``levels - 1`` halvings: 97 for 5 and 7.

    Each halving keeps ``ceil(n / 2)`` voxels, so ``n`` must be at least ``(window - 1) * 2^(levels - 1) + 1``.
    """
    return (window - 1) * 2 ** (levels - 1) + 1


def _box_mean(volume: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size``-wide cube around each voxel, mirrored at the faces (d c b a | a b c d).

    The same values as ``scipy.ndimage.uniform_filter(volume, size)`` (mode 'reflect'), computed by
    running sums along each axis; the tests compare the two.
    """
    out = np.pad(volume, size // 2, mode="symmetric")
    for axis, n in enumerate(volume.shape):
        # window sums along this axis: S[i + size] - S[i] over the running sum S (with S[0] = 0);
        # the axes not yet summed keep their padding until their own pass
        running = np.cumsum(out, axis=axis, dtype=np.float64)
        running = np.concatenate([np.zeros_like(np.take(running, [0], axis=axis)), running], axis=axis)
        out = np.take(running, np.arange(size, size + n), axis=axis) - np.take(running, np.arange(n), axis=axis)
    return out / size**volume.ndim


def _ssim_components_map(x: np.ndarray, y: np.ndarray, data_range: float, weight: float) -> np.ndarray:
    """SynthRAD2025's SSIM map at one scale: (L C S)^weight per voxel, each component clipped at 0.

    Uniform 7-wide window, sample covariance, K1 0.01, K2 0.03, C3 = C2 / 2; C and S use the
    square roots of the variances clipped at 0. The challenge code gives luminance, contrast
    and structure the same exponent at every scale (its luminance-only-at-the-last-scale line is
    overwritten before use); this follows it.
    """
    window = SSIM_DEFAULT_WINDOW
    n = window**x.ndim
    cov_norm = n / (n - 1)
    ux, uy = _box_mean(x, window), _box_mean(y, window)
    vx = cov_norm * (_box_mean(x * x, window) - ux * ux)
    vy = cov_norm * (_box_mean(y * y, window) - uy * uy)
    vxy = cov_norm * (_box_mean(x * y, window) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    c3 = c2 / 2
    sx, sy = np.sqrt(np.clip(vx, 0, None)), np.sqrt(np.clip(vy, 0, None))
    luminance = np.clip((2 * ux * uy + c1) / (ux * ux + uy * uy + c1), 0, None)
    contrast = np.clip((2 * sx * sy + c2) / (vx + vy + c2), 0, None)
    structure = np.clip((vxy + c3) / (sx * sy + c3), 0, None)
    return luminance**weight * contrast**weight * structure**weight


def _halve(volume: np.ndarray) -> np.ndarray:
    """SynthRAD2025's down-sampling: the mean of each voxel and its predecessor along every axis
    (zero before the first), then every other voxel from the first.

    Its code convolves with a 2x2x2 box (``scipy.signal.fftconvolve``, mode 'same', whose window
    for an even kernel ends at the voxel itself); here the eight shifted copies are summed.
    """
    padded = np.pad(volume, 1, mode="constant")[tuple(slice(0, n + 1) for n in volume.shape)]
    total = np.zeros(volume.shape, np.float64)
    for offsets in np.ndindex(*(2,) * volume.ndim):
        total += padded[tuple(slice(o, o + n) for o, n in zip(offsets, volume.shape, strict=True))]
    return (total / 2**volume.ndim)[tuple(slice(None, None, 2) for _ in volume.shape)]


def ms_ssim_hu(sct_hu: np.ndarray, ct_hu: np.ndarray, mask: np.ndarray, hu_range: Sequence[float],
               weights: Sequence[float] = MS_SSIM_WEIGHTS) -> float:
    """SynthRAD2025's masked MS-SSIM of a synthetic CT volume against the CT (1 for identical volumes).

    Both volumes are clipped to ``hu_range``, every voxel outside the mask is set to its low end,
    and values are shifted to start at 0 (data range ``hi - lo``). Every side shorter than
    :func:`ms_ssim_min_size` (97) is edge-padded (images and mask) to that size, split as evenly
    as possible with the extra voxel after. At each of the five scales the SSIM map
    (:func:`_ssim_components_map`, exponent = that scale's weight) and the mask are cropped by 3
    voxels at every face and the map is averaged over the mask; then the volumes are halved
    (:func:`_halve`) and the mask subsampled (every other voxel). MS-SSIM is the product of the
    five masked means, each clipped to [0, 1]. NaN when a scale has no mask voxel left.

    Deviation: the challenge fixes the range at [-1024, 3071] HU; the pipeline passes
    ``evaluate.hu_clip`` so that the SSIM and MS-SSIM columns share one range.
    """
    lo, hi = _check_clip(hu_range)
    mask = np.asarray(mask) > 0
    sct, ct = np.asarray(sct_hu, np.float64), np.asarray(ct_hu, np.float64)
    if sct.shape != ct.shape or mask.shape != ct.shape or ct.ndim != 3:
        raise ValueError(f"expected 3-D sCT, CT and mask of one shape, got {sct.shape}, {ct.shape}, {mask.shape}")
    if not mask.any():
        return math.nan
    x = np.where(mask, np.clip(ct, lo, hi), lo) - lo
    y = np.where(mask, np.clip(sct, lo, hi), lo) - lo
    target = ms_ssim_min_size(len(weights))
    pads = [(max(target - n, 0) // 2, max(target - n, 0) - max(target - n, 0) // 2) for n in ct.shape]
    x, y = np.pad(x, pads, mode="edge"), np.pad(y, pads, mode="edge")
    m = np.pad(mask, pads, mode="edge")
    inner = SSIM_CROP
    values = []
    for level, weight in enumerate(weights):
        ssim_map = _ssim_components_map(x, y, hi - lo, float(weight))
        keep = tuple(slice(inner, n - inner) for n in m.shape)
        kept = m[keep]
        if not kept.any():
            return math.nan
        values.append(float(ssim_map[keep][kept].mean()))
        if level < len(weights) - 1:
            x, y, m = _halve(x), _halve(y), m[::2, ::2, ::2]
    return float(np.prod(np.clip(values, 0.0, 1.0)))


#: Column names of the volume metrics (results/metrics/{model}_volumes.csv, an interface): the HU
#: metrics, then tissue overlap (:mod:`mrct.evaluation.tissue`).
VOLUME_HU_METRICS = ["mae_hu", "psnr_hu", "ssim_hu", "ms_ssim_hu"]
VOLUME_METRICS = [*VOLUME_HU_METRICS, *TISSUE_METRICS]


def volume_hu_metrics(sct_hu: np.ndarray, ct_hu: np.ndarray, mask: np.ndarray,
                      hu_clip: Sequence[float]) -> dict[str, float]:
    """SynthRAD2023's MAE, PSNR and SSIM and SynthRAD2025's MS-SSIM of a synthetic CT volume in float
    HU against the CT."""
    if np.ndim(ct_hu) != 3:
        raise ValueError(f"expected 3-D volumes [slice, row, col], got shape {np.shape(ct_hu)}")
    values = hu_metrics(sct_hu, ct_hu, mask, hu_clip)
    return {"mae_hu": values["hu_mae"], "psnr_hu": values["hu_psnr"], "ssim_hu": values["hu_ssim"],
            "ms_ssim_hu": ms_ssim_hu(sct_hu, ct_hu, mask, hu_clip)}
