"""Translate the test split with a trained model, both directions, one PNG per ground-truth PNG.

``mr2ct`` predictions are written under the CT PNG's file name and ``ct2mr`` predictions under
the MR PNG's, so the evaluation pairs each prediction with its ground truth by name alone.
Predictions are stored as the slices are: 16-bit levels of the target's window.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mrct.io.png import read_gray_png, write_gray_png
from mrct.models.networks import from_network_output, to_network_input
from mrct.models.trained import load_trained_generator
from mrct.slices.geometry import SLICE_DTYPE, to_levels
from mrct.slices.manifest import direction as direction_named
from mrct.slices.manifest import split_rows

log = logging.getLogger(__name__)


@torch.no_grad()
def translate_images(generator: torch.nn.Module, images: np.ndarray, batch_size: int = 8,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 or uint16 [N, H, W] -> float32 [N, H, W] in [-1, 1] through ``generator``.

    Any trained generator (ResNet or U-Net), in eval mode: batch norms use their running
    statistics and dropout is off, so a slice's translation does not depend on its batch.
    3-channel in, channel mean out, not rounded: the caller stores it as levels
    (``to_levels(x, -1, 1)``) or maps it straight to physical units (``from_unit``).
    """
    if images.ndim != 3 or images.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 images [N, H, W], got {images.dtype} {images.shape}")
    generator = generator.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_network_input(torch.from_numpy(np.array(images[start : start + batch_size]))).to(device)
        out.append(from_network_output(generator(batch)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(images.shape, np.float32)


def predict_direction(generator: torch.nn.Module, rows: pd.DataFrame, direction: str, out_dir: str | Path,
                      root: str | Path = ".", batch_size: int = 8, device: str | torch.device = "cpu") -> list[Path]:
    """Translate the source PNGs of ``rows`` and write them to ``out_dir`` (atomically, one by one)."""
    columns = direction_named(direction)
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = np.stack([read_gray_png(root / p) for p in rows[columns.source_column]])
    predictions = translate_images(generator, images, batch_size, device)
    written = []
    for prediction, truth in zip(predictions, rows[columns.target_column], strict=True):
        target = out_dir / Path(truth).name
        write_gray_png(to_levels(prediction, -1.0, 1.0, SLICE_DTYPE), target)  # [-1, 1] is the stored scale
        written.append(target)
    log.info("%s: wrote %d predictions to %s", direction, len(written), out_dir)
    return written


def predict_test_split(model_dir: str | Path, manifest: pd.DataFrame, out_dirs: dict[str, str | Path],
                       root: str | Path = ".", batch_size: int = 8, device: str = "cpu") -> dict[str, list[Path]]:
    """Predict the test split in each direction of ``out_dirs`` with ``model_dir``/G_{direction}.pth."""
    rows = split_rows(manifest, "test")
    written = {}
    for direction, out_dir in out_dirs.items():
        direction_named(direction)  # an unknown direction fails before any model is loaded
        generator = load_trained_generator(Path(model_dir) / f"G_{direction}.pth", device)
        written[direction] = predict_direction(generator, rows, direction, out_dir, root, batch_size, device)
    return written
