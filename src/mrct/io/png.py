"""The one PNG codec of the pipeline: grayscale slices of 8 or 16 bits, read and written side by side.

Slices and predictions are single-channel 16-bit PNGs (65,536 levels: the CT window
[-1024, 3000] HU at 0.06 HU per level, see ``mrct.slices.geometry``); masks are 8-bit. The bit
depth travels with the array: ``read_gray_png`` returns uint16 for a 16-bit file and uint8 for
an 8-bit one, and every reader maps a level back through the dtype's full scale, so 8-bit slices
made before (or predictions made elsewhere) stay readable. Reading accepts RGB(A) and palette
files too (a user may hand-place predictions) and converts them with PIL's ITU-R 601 luma, which
returns the gray value unchanged when the channels are equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mrct.io.atomic import atomic_path

_READABLE_MODES = ("L", "P", "RGB", "RGBA", "LA")
#: Pillow's modes of a 16-bit grayscale PNG (the name depends on the Pillow version and byte order).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
#: The pixel types a slice PNG holds: 8-bit and 16-bit grayscale.
GRAY_DTYPES = (np.uint8, np.uint16)


def read_gray_png(path: str | Path) -> np.ndarray:
    """A grayscale PNG as a uint8 or uint16 [H, W] array (its own bit depth); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a grayscale PNG slice, file not found")
    with Image.open(path) as image:
        if image.mode in _SIXTEEN_BIT_MODES:
            pixels = np.asarray(image)
            if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
                raise ValueError(f"{path}: expected 16-bit levels 0..65535, got {pixels.min()}..{pixels.max()}")
            return pixels.astype(np.uint16)
        if image.mode not in _READABLE_MODES:
            raise ValueError(f"{path}: expected an 8- or 16-bit grayscale PNG, got mode {image.mode}")
        return np.asarray(image if image.mode == "L" else image.convert("L"))


def write_gray_png(pixels: np.ndarray, path: str | Path) -> None:
    """Write uint8 (8-bit) or uint16 (16-bit) [H, W] as a grayscale PNG, atomically."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in GRAY_DTYPES:
        raise ValueError(f"{path}: expected uint8 or uint16 [H, W] pixels, got {pixels.dtype} {pixels.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
