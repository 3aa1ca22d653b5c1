"""Image-quality metrics of translated 8-bit slices, as the study computed them, and masked.

Definitions chosen, and why (libraries disagree, and researchers compare these numbers with the study):

* **PSNR** (8-bit): ``10 log10(255^2 / MSE)`` via scikit-image, data range 255. Identical images give
  ``inf`` (no capping: a cap would be an arbitrary number that looks like a result); tables carry it
  through as ``inf``.
* **SSIM** (8-bit): Wang, Bovik, Sheikh & Simoncelli 2004 as published: 11x11 Gaussian window,
  sigma 1.5, K1=0.01, K2=0.03, population covariance, data range 255 (scikit-image with
  ``gaussian_weights=True, use_sample_covariance=False``), averaged over the map without its
  5-pixel border.
* **UQI**: Wang & Bovik 2002 ("A universal image quality index"), 8x8 sliding window (step 1,
  'valid' positions only), the mean of the quality map, with the special cases of the authors'
  reference code (a window where both images are flat gives 1). torchmetrics uses an 11x11 Gaussian
  window instead, so UQI is written here, in exact integer arithmetic on the 0..255 data so that
  flat background windows hit the special cases exactly rather than by float round-off.
* **VIF**: Sheikh & Bovik 2006 pixel-domain VIF (``vifp_mscale``): 4 scales, Gaussian windows of
  17, 9, 5, 3 pixels (sigma N/5), 'valid' filtering, downsampling by 2 between scales,
  sigma_nsq = 2, with the clamps of the authors' code, on 0..255 data since VIF is not
  scale-invariant. torchmetrics implements exactly this, but with 2-D float64 convolutions that
  take about 0.7 s per 256x256 slice on a CPU (45 minutes for the study's 18 models); the same
  computation is written here with separable 1-D filters (the Gaussian is separable), about 100x
  faster, and tested against torchmetrics. Needs at least 41x41 pixels; smaller images get NaN.
* **MAE, MSE, RMSE** on 0..255.
* **Masked 8-bit metrics** (``*_masked``): the same seven metrics restricted to the head mask of
  the slice, because on a padded slice the air dominates: a UQI window that is 0 in both images
  scores 1, and one that is 0 in the reference and 1 in the prediction scores 0, so a one-gray-level
  background offset moves whole-slice UQI and SSIM by more than any difference between heads.
  PSNR, MAE, MSE and RMSE use the pixels inside the mask. SSIM and UQI average their quality maps
  over the windows *centred* inside the mask (SSIM: scikit-image's full map, each pixel the centre
  of its 11x11 window, without the same 5-pixel border as the whole-slice value; UQI: the 8x8
  window at rows/columns ``i..i+7`` is centred at ``i + 4``, the lower-right of its 2x2 centre).
  VIF is a ratio of two sums of information over windows at four scales, not a mean of per-window
  scores (a per-window ratio is undefined where the reference is flat), so its masked form keeps
  that ratio and restricts both sums to the windows whose centre, mapped back through the
  filtering and down-sampling of each scale, lies inside the mask. Flat air carries no
  information (zero reference variance adds 0 to both sums), so masked and whole-slice VIF differ
  mostly where the background is textured (noise, couch) or at the head's edge. With a mask that
  covers the whole image every masked metric equals its whole-slice value. A mask with no pixel
  (or no window centre) inside gives NaN. The mask removes the air, not UQI's own instability:
  UQI has no stabilising constants, so a window inside the head that is flat in the ground truth
  (dark cortical bone on MR, say) still scores 1 or 0 on a one-gray-level difference. SSIM's
  constants make it robust to that, which is why the report ranks models by masked SSIM.
* **HU metrics** (SynthRAD2023 definitions): :mod:`mrct.evaluation.hu_metrics`.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.ndimage import correlate1d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrct.evaluation.tissue import TISSUE_CLASSES

log = logging.getLogger(__name__)

DATA_RANGE_8BIT = 255.0
UQI_WINDOW = 8
VIF_SIGMA_NSQ = 2.0
VIF_MIN_SIDE = 41
SSIM_MIN_SIDE = 11

#: Metrics and whether higher is better (used by the tables and the significance test).
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "uqi": True,
    "vif": True,
    "mae": False,
    "mse": False,
    "rmse": False,
    "hu_mae": False,
    "hu_psnr": True,
    "hu_ssim": True,
    "mae_hu": False,
    "psnr_hu": True,
    "ssim_hu": True,
    "ms_ssim_hu": True,
    **{f"dice_{c}": True for c in TISSUE_CLASSES},
    **{f"hd95_{c}_mm": False for c in TISSUE_CLASSES},
}
IMAGE_METRICS = ["psnr", "ssim", "uqi", "vif", "mae", "mse", "rmse"]
MASKED_SUFFIX = "_masked"
#: The 8-bit metrics inside the head mask (see the module docstring); they rank the models.
MASKED_METRICS = [f"{m}{MASKED_SUFFIX}" for m in IMAGE_METRICS]
HIGHER_IS_BETTER.update({f"{m}{MASKED_SUFFIX}": HIGHER_IS_BETTER[m] for m in IMAGE_METRICS})


def _check_8bit(*images: np.ndarray) -> None:
    """Data range 255 is only right for 0..255 data: 16-bit slices must be rendered first (``as_uint8``)."""
    for image in images:
        image = np.asarray(image)
        if image.dtype == np.uint16 or (image.size and float(np.nanmax(image)) > DATA_RANGE_8BIT):
            raise ValueError(f"expected 8-bit data (0..255) for the 8-bit metrics, got {image.dtype} up to "
                             f"{np.nanmax(image) if image.size else 'nothing'}: render 16-bit slices with "
                             "mrct.slices.geometry.as_uint8 first")


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape or pred.ndim != 2:
        raise ValueError(f"expected two 2-D images of the same shape, got {pred.shape} and {ref.shape}")
    _check_8bit(pred, ref)


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The head mask as bool, or None; its shape must be the images' shape."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"expected a mask of the images' shape {tuple(shape)}, got {mask.shape}")
    return mask.astype(bool)


def _mean_inside(values: np.ndarray, inside: np.ndarray) -> float:
    """Mean of ``values`` where ``inside`` holds; NaN (not an error) when nothing is inside."""
    return float(values[inside].mean()) if inside.any() else math.nan


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float = DATA_RANGE_8BIT, mask: np.ndarray | None = None) -> float:
    """PSNR in dB (inside ``mask`` if given); ``inf`` for identical images (see module docstring)."""
    _check_8bit(pred, ref)
    pred64, ref64 = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    mask = _check_mask(mask, ref64.shape)
    if mask is not None:
        if not mask.any():
            return math.nan
        pred64, ref64 = pred64[mask], ref64[mask]
    if np.array_equal(pred64, ref64):
        return math.inf
    return float(peak_signal_noise_ratio(ref64, pred64, data_range=data_range))


def _ssim_full(pred: np.ndarray, ref: np.ndarray, data_range: float) -> tuple[float, np.ndarray]:
    """Whole-image SSIM and its map (scikit-image, the published parameters)."""
    _check_pair(pred, ref)
    if min(pred.shape) < SSIM_MIN_SIDE:
        raise ValueError(f"SSIM needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE}, got {pred.shape}")
    value, ssim_map = structural_similarity(
        np.asarray(ref, np.float64),
        np.asarray(pred, np.float64),
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    return float(value), ssim_map


def _ssim_inside(ssim_map: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the SSIM map over window centres inside the mask, without scikit-image's border."""
    pad = (SSIM_MIN_SIDE - 1) // 2  # the window for sigma 1.5 is 11 wide; scikit-image's mean skips this border
    inner = (slice(pad, -pad), slice(pad, -pad))
    return _mean_inside(ssim_map[inner], mask[inner])


def ssim(pred: np.ndarray, ref: np.ndarray, data_range: float = DATA_RANGE_8BIT, mask: np.ndarray | None = None) -> float:
    """SSIM as published by Wang et al. 2004 (11x11 Gaussian, sigma 1.5, population covariance).

    With ``mask``: the mean of scikit-image's SSIM map over the pixels (window centres) inside the
    mask, leaving out the same border as scikit-image's whole-image mean.
    """
    value, ssim_map = _ssim_full(pred, ref, data_range)
    mask = _check_mask(mask, ref.shape)
    return value if mask is None else _ssim_inside(ssim_map, mask)


def _window_sums(image: np.ndarray, size: int) -> np.ndarray:
    """Exact sums over every size x size window ('valid' positions) via an integral image."""
    integral = np.zeros((image.shape[0] + 1, image.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = image.cumsum(0).cumsum(1)
    return (
        integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    )


def uqi_map(pred: np.ndarray, ref: np.ndarray, window: int = UQI_WINDOW) -> np.ndarray:
    """Wang-Bovik quality of every window x window window ('valid' positions) of 0..255 images.

    Hand-written because torchmetrics' UQI uses a Gaussian 11x11 window, not the published one.
    The map's element [i, j] is the window with top-left pixel (i, j), centred at (i + w//2, j + w//2).
    """
    _check_pair(pred, ref)
    if min(pred.shape) < window:
        raise ValueError(f"UQI needs images of at least {window}x{window}, got {pred.shape}")
    a = np.rint(np.asarray(ref, np.float64)).astype(np.int64)
    b = np.rint(np.asarray(pred, np.float64)).astype(np.int64)
    n = window * window
    sum_a, sum_b = _window_sums(a, window), _window_sums(b, window)
    sum_aa, sum_bb, sum_ab = _window_sums(a * a, window), _window_sums(b * b, window), _window_sums(a * b, window)
    mean_product = sum_a * sum_b  # n^2 * mu_a * mu_b
    mean_squares = sum_a * sum_a + sum_b * sum_b  # n^2 * (mu_a^2 + mu_b^2)
    covariance = n * sum_ab - mean_product  # n^2 * sigma_ab
    variances = n * (sum_aa + sum_bb) - mean_squares  # n^2 * (sigma_a^2 + sigma_b^2)
    quality = np.ones(sum_a.shape, dtype=np.float64)
    flat = (variances == 0) & (mean_squares != 0)
    quality[flat] = 2.0 * mean_product[flat] / mean_squares[flat]
    dark = (variances != 0) & (mean_squares == 0)
    quality[dark] = 2.0 * covariance[dark] / variances[dark]
    regular = (variances != 0) & (mean_squares != 0)
    quality[regular] = (4.0 * covariance[regular] * mean_product[regular]) / (
        variances[regular].astype(np.float64) * mean_squares[regular].astype(np.float64)
    )
    return quality


def _uqi_inside(quality: np.ndarray, mask: np.ndarray, window: int) -> float:
    """Mean of a UQI map over the windows centred inside the mask (centre: top-left + w // 2)."""
    centre = window // 2
    return _mean_inside(quality, mask[centre : centre + quality.shape[0], centre : centre + quality.shape[1]])


def uqi(pred: np.ndarray, ref: np.ndarray, window: int = UQI_WINDOW, mask: np.ndarray | None = None) -> float:
    """Universal quality index (Wang & Bovik 2002): the mean of :func:`uqi_map`.

    With ``mask``: the mean over the windows whose centre pixel lies inside the mask.
    """
    quality = uqi_map(pred, ref, window)
    mask = _check_mask(mask, ref.shape)
    return float(quality.mean()) if mask is None else _uqi_inside(quality, mask, window)


def _gaussian_1d(size: int) -> np.ndarray:
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(coords**2) / (2.0 * (size / 5.0) ** 2))
    return kernel / kernel.sum()


def _filter_valid(stack: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D 'valid' filtering of [N, H, W] with the separable kernel outer(kernel, kernel)."""
    half = (kernel.size - 1) // 2
    out = correlate1d(stack, kernel, axis=1, mode="constant")
    out = correlate1d(out, kernel, axis=2, mode="constant")
    return out[:, half : out.shape[1] - half, half : out.shape[2] - half]


def _vif_sums(
    dist: np.ndarray, ref: np.ndarray, masks: np.ndarray | None, sigma_nsq: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Numerator and denominator of VIF per image, over all windows and over the masked ones.

    A map position ``k`` at one scale is the window centred at pixel ``offset + stride * k`` of the
    full-resolution image: 'valid' filtering with a kernel of half-width h shifts the offset by
    ``stride * h``, and keeping every second sample doubles the stride.
    """
    eps = 1e-10
    n = dist.shape[0]
    numerator, denominator = np.zeros(n), np.zeros(n)
    numerator_in, denominator_in = np.zeros(n), np.zeros(n)
    offset, stride = 0, 1
    for scale in range(4):
        kernel = _gaussian_1d(2 ** (4 - scale) + 1)
        half = (kernel.size - 1) // 2
        if scale > 0:
            ref = _filter_valid(ref, kernel)[:, ::2, ::2]
            dist = _filter_valid(dist, kernel)[:, ::2, ::2]
            offset, stride = offset + stride * half, stride * 2
        mu_r, mu_d = _filter_valid(ref, kernel), _filter_valid(dist, kernel)
        var_r = np.maximum(_filter_valid(ref * ref, kernel) - mu_r**2, 0.0)
        var_d = np.maximum(_filter_valid(dist * dist, kernel) - mu_d**2, 0.0)
        cov = _filter_valid(ref * dist, kernel) - mu_r * mu_d
        gain = cov / (var_r + eps)
        noise = var_d - gain * cov
        flat_ref = var_r < eps
        gain[flat_ref], noise[flat_ref], var_r[flat_ref] = 0.0, var_d[flat_ref], 0.0
        flat_dist = var_d < eps
        gain[flat_dist], noise[flat_dist] = 0.0, 0.0
        negative = gain < 0
        noise[negative], gain[negative] = var_d[negative], 0.0
        noise = np.maximum(noise, eps)
        info_kept = np.log10(1.0 + gain**2 * var_r / (noise + sigma_nsq))
        info_ref = np.log10(1.0 + var_r / sigma_nsq)
        numerator += info_kept.sum(axis=(1, 2))
        denominator += info_ref.sum(axis=(1, 2))
        if masks is not None:
            start = offset + stride * half  # centre of the map's first window, in full-resolution pixels
            rows, cols = mu_r.shape[1:]
            inside = masks[:, start : start + stride * rows : stride, start : start + stride * cols : stride]
            numerator_in += (info_kept * inside).sum(axis=(1, 2))
            denominator_in += (info_ref * inside).sum(axis=(1, 2))
    return numerator, denominator, numerator_in, denominator_in


def _check_stacks(preds: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _check_8bit(preds, refs)
    dist, ref = np.asarray(preds, np.float64), np.asarray(refs, np.float64)
    if dist.shape != ref.shape or dist.ndim != 3:
        raise ValueError(f"expected two stacks [N, H, W] of the same shape, got {dist.shape} and {ref.shape}")
    return dist, ref


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def vif_batch(preds: np.ndarray, refs: np.ndarray, sigma_nsq: float = VIF_SIGMA_NSQ) -> np.ndarray:
    """Pixel-domain VIF (Sheikh & Bovik) of a stack [N, H, W] of 0..255 images; NaN if too small."""
    dist, ref = _check_stacks(preds, refs)
    if min(dist.shape[1:]) < VIF_MIN_SIDE:
        log.warning("VIF needs at least %dx%d pixels, got %s: NaN", VIF_MIN_SIDE, VIF_MIN_SIDE, dist.shape[1:])
        return np.full(dist.shape[0], np.nan)
    numerator, denominator, _, _ = _vif_sums(dist, ref, None, sigma_nsq)
    return _ratio(numerator, denominator)


def vif_batch_masked(
    preds: np.ndarray, refs: np.ndarray, masks: np.ndarray, sigma_nsq: float = VIF_SIGMA_NSQ
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-image and masked VIF of a stack [N, H, W] in one pass (see the module docstring)."""
    dist, ref = _check_stacks(preds, refs)
    masks = np.asarray(masks)
    if masks.shape != dist.shape:
        raise ValueError(f"expected masks of the images' shape {dist.shape}, got {masks.shape}")
    if min(dist.shape[1:]) < VIF_MIN_SIDE:
        log.warning("VIF needs at least %dx%d pixels, got %s: NaN", VIF_MIN_SIDE, VIF_MIN_SIDE, dist.shape[1:])
        return np.full(dist.shape[0], np.nan), np.full(dist.shape[0], np.nan)
    numerator, denominator, numerator_in, denominator_in = _vif_sums(dist, ref, masks.astype(bool), sigma_nsq)
    return _ratio(numerator, denominator), _ratio(numerator_in, denominator_in)


def vif(pred: np.ndarray, ref: np.ndarray, sigma_nsq: float = VIF_SIGMA_NSQ, mask: np.ndarray | None = None) -> float:
    """VIF of one image pair; with ``mask``, the masked form (windows centred inside the mask)."""
    _check_pair(pred, ref)
    if mask is None:
        return float(vif_batch(pred[None], ref[None], sigma_nsq)[0])
    mask = _check_mask(mask, ref.shape)
    return float(vif_batch_masked(pred[None], ref[None], mask[None], sigma_nsq)[1][0])


def error_metrics(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """MAE, MSE and RMSE (over the pixels inside ``mask`` if given; NaN if it is empty)."""
    diff = np.asarray(pred, np.float64) - np.asarray(ref, np.float64)
    mask = _check_mask(mask, diff.shape)
    if mask is not None:
        diff = diff[mask]
    if diff.size == 0:
        return {"mae": math.nan, "mse": math.nan, "rmse": math.nan}
    mse = float(np.mean(diff**2))
    return {"mae": float(np.mean(np.abs(diff))), "mse": mse, "rmse": math.sqrt(mse)}


def image_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    mask: np.ndarray | None = None,
    vif_value: float | None = None,
    vif_masked_value: float | None = None,
) -> dict[str, float]:
    """All 8-bit metrics of one predicted slice against its ground truth (both 0..255).

    With ``mask`` (the head mask of the slice) the masked metrics (``*_masked``) come too.
    ``vif_value`` / ``vif_masked_value`` let a caller pass VIF computed for a whole batch at once
    (much faster).
    """
    ssim_value, ssim_map = _ssim_full(pred, ref, DATA_RANGE_8BIT)
    quality = uqi_map(pred, ref)
    values = {
        "psnr": psnr(pred, ref),
        "ssim": ssim_value,
        "uqi": float(quality.mean()),
        "vif": vif(pred, ref) if vif_value is None else float(vif_value),
        **error_metrics(pred, ref),
    }
    if mask is None:
        return values
    mask = _check_mask(mask, ref.shape)
    if not mask.any():
        log.warning("empty head mask: the masked metrics of this slice are NaN")
    masked = {
        "psnr": psnr(pred, ref, mask=mask),
        "ssim": _ssim_inside(ssim_map, mask),
        "uqi": _uqi_inside(quality, mask, UQI_WINDOW),
        "vif": vif(pred, ref, mask=mask) if vif_masked_value is None else float(vif_masked_value),
        **error_metrics(pred, ref, mask),
    }
    return {**values, **{f"{m}{MASKED_SUFFIX}": masked[m] for m in IMAGE_METRICS}}
