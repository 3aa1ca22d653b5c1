"""Axial slices as square 16-bit PNGs, and the exact way back.

Slices keep their aspect ratio: the longer in-plane side is resized to ``size`` and the shorter
one is padded symmetrically with the background value. The geometry of that mapping depends only
on the slice's original shape and ``size``, so ``from_square`` can undo it from the two numbers
the manifest stores (``rows``, ``cols``), e.g. to re-stack synthetic slices into a volume.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _fit(shape: tuple[int, int], size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Resized shape and (top, left) padding of a slice of ``shape`` in a ``size`` square."""
    rows, cols = shape
    scale = size / max(rows, cols)
    fitted = (max(1, round(rows * scale)), max(1, round(cols * scale)))
    return fitted, ((size - fitted[0]) // 2, (size - fitted[1]) // 2)


def _resize(image: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    if image.shape == tuple(shape):
        return image.copy()
    zoom = (shape[0] / image.shape[0], shape[1] / image.shape[1])
    # grid_mode keeps pixel centres aligned the way image resizers do (no half-pixel shift).
    return ndimage.zoom(image, zoom, order=order, mode="grid-constant", grid_mode=True, output=np.float64)


def to_square(image: np.ndarray, size: int, order: int = 1, background: float = 0.0) -> np.ndarray:
    """Resize a 2-D slice to fit a ``size`` square keeping its aspect ratio, then pad it."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {image.shape}")
    fitted, (top, left) = _fit(image.shape, size)
    out = np.full((size, size), background, dtype=np.float64)
    out[top : top + fitted[0], left : left + fitted[1]] = _resize(image.astype(np.float64), fitted, order)
    return out


def from_square(image: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Undo ``to_square``: crop the padding and resize back to the original ``shape``."""
    size = image.shape[0]
    if image.shape != (size, size):
        raise ValueError(f"expected a square image, got shape {image.shape}")
    fitted, (top, left) = _fit(tuple(int(s) for s in shape), size)
    crop = np.asarray(image, dtype=np.float64)[top : top + fitted[0], left : left + fitted[1]]
    return _resize(crop, tuple(int(s) for s in shape), order)


#: Pixel type of every stored slice and prediction, MR and CT alike: 65,536 levels hold the CT
#: window [-1024, 3000] HU at 0.061 HU per level, where 8 bits gave 15.8 HU (white and grey matter,
#: 13 HU apart, one gray level apart). One type for both modalities keeps one code path.
SLICE_DTYPE = np.uint16


def full_scale(dtype: np.dtype | type) -> int:
    """The top level of a stored slice type: 255 for uint8, 65535 for uint16."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"expected stored levels of type uint8 or uint16, got {dtype}")
    return int(np.iinfo(dtype).max)


def to_levels(values: np.ndarray, low: float, high: float, dtype: np.dtype | type = SLICE_DTYPE) -> np.ndarray:
    """Map ``[low, high]`` linearly to 0..full scale of ``dtype`` (clipped, rounded)."""
    if not high > low:
        raise ValueError(f"intensity window low ({low}) must be < high ({high})")
    top = full_scale(dtype)
    scaled = (np.asarray(values, dtype=np.float64) - low) / (high - low) * top
    return np.clip(np.rint(scaled), 0, top).astype(dtype)


def from_levels(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse of ``to_levels`` up to quantisation: stored levels back to ``[low, high]``.

    The full scale comes from the pixels' type (the PNG's bit depth), so 8-bit and 16-bit slices
    map back alike.
    """
    pixels = np.asarray(pixels)
    return low + pixels.astype(np.float64) / full_scale(pixels.dtype) * (high - low)


def to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` linearly to 0..255 (clipped, rounded): an 8-bit rendering."""
    return to_levels(values, low, high, np.uint8)


def from_uint8(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse of ``to_uint8`` up to quantisation: 0..255 back to ``[low, high]``."""
    return low + np.asarray(pixels, dtype=np.float64) / 255.0 * (high - low)


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    """A stored slice rendered in 8 bits over its own stored window (the 8-bit metrics' input).

    Level L of a 16-bit slice becomes rint(L * 255 / 65535): the 8-bit PNG the same window would
    have given (to within one gray level where the two roundings meet at a tie). 8-bit input is
    returned unchanged.
    """
    pixels = np.asarray(pixels)
    top = full_scale(pixels.dtype)
    if top == 255:
        return pixels.copy()
    return np.rint(pixels.astype(np.float64) * (255.0 / top)).astype(np.uint8)


def from_unit(unit: np.ndarray, low: float, high: float) -> np.ndarray:
    """The network's float output in [-1, 1] straight to ``[low, high]``, with no rounding.

    Level 0 is -1 and the full scale +1 (``mrct.models.networks.gray_to_unit``), so this is
    ``from_levels`` without the stored levels in between.
    """
    return low + (np.asarray(unit, dtype=np.float64) + 1.0) / 2.0 * (high - low)
