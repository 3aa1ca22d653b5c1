"""Axial slices as square 8-bit PNGs, and the exact way back.

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


def to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` linearly to 0..255 (clipped, rounded)."""
    if not high > low:
        raise ValueError(f"intensity window low ({low}) must be < high ({high})")
    scaled = (np.asarray(values, dtype=np.float64) - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def from_uint8(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse of ``to_uint8`` up to quantisation: 0..255 back to ``[low, high]``."""
    return low + np.asarray(pixels, dtype=np.float64) / 255.0 * (high - low)
