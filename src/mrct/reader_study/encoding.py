"""Label-blind image encoding: every image of a given size becomes a PNG of the same length.

A PNG's byte size betrays how well its pixels compress, and synthetic slices (smoother) compress
better than real ones; encoders also add metadata chunks and choose row filters from the content.
Here each 8-bit grayscale image is written with filter 0 (none) on every row, one IDAT holding a
zlib stream of *stored* (uncompressed) deflate blocks, and no ancillary chunks. Every byte outside
the pixel values then depends only on the image size (and the two checksums of the pixels), so
lengths, chunk layout and headers are identical for real and synthetic images. The cost is size:
a 256x256 slice is 66 KB (88 KB as base64), about 42 MB for the study's 480 images.

Hand-written (30 lines) rather than Pillow: Pillow's PNG writer picks per-row filters from the
pixels even at ``compress_level=0``, so its bytes would carry a content signature beyond the
pixels. tests/test_reader_study_blind.py decodes the result with Pillow and in Chromium.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_gray_png(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG of ``pixels`` whose length depends only on the image's shape."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got shape {pixels.shape} dtype {pixels.dtype}")
    height, width = pixels.shape
    if height == 0 or width == 0:
        raise ValueError(f"expected a non-empty image, got shape {pixels.shape}")
    # Bit depth 8, colour type 0 (grayscale), deflate, adaptive-filter method 0, no interlace.
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # column 0: filter type 0 for every row
    rows[:, 1:] = pixels
    # Level 0 writes stored blocks: the stream's length is a function of the input length only.
    stream = zlib.compress(rows.tobytes(), level=0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def data_uri(png: bytes) -> str:
    """A ``data:`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_chunks(png: bytes) -> list[tuple[str, int]]:
    """(type, length) of every chunk: what an attacker reading the page's bytes sees first."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("expected PNG data (no PNG signature)")
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset + 8 <= len(png):
        length = struct.unpack(">I", png[offset:offset + 4])[0]
        chunks.append((png[offset + 4:offset + 8].decode("latin-1"), length))
        offset += 12 + length
    return chunks
