"""The one PNG codec of the pipeline: 8-bit grayscale slices, read and written side by side.

Slices, predictions and masks are single-channel 8-bit PNGs. Reading accepts RGB(A) and
palette files too (a user may hand-place predictions made elsewhere) and converts them with
PIL's ITU-R 601 luma, which returns the gray value unchanged when the channels are equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mrct.io.atomic import atomic_path

_READABLE_MODES = ("L", "P", "RGB", "RGBA", "LA")


def read_gray_png(path: str | Path) -> np.ndarray:
    """An 8-bit grayscale PNG as a uint8 [H, W] array; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected an 8-bit PNG slice, file not found")
    with Image.open(path) as image:
        if image.mode not in _READABLE_MODES:
            raise ValueError(f"{path}: expected an 8-bit grayscale PNG, got mode {image.mode}")
        return np.asarray(image if image.mode == "L" else image.convert("L"))


def write_gray_png(pixels: np.ndarray, path: str | Path) -> None:
    """Write uint8 [H, W] as an 8-bit grayscale PNG, atomically."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 [H, W] pixels, got {pixels.dtype} {pixels.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
