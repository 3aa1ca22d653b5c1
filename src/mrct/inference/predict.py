"""Translate the test split with a trained model, both directions, one PNG per ground-truth PNG.

``mr2ct`` predictions are written under the CT PNG's file name and ``ct2mr`` predictions under
the MR PNG's, so the evaluation pairs each prediction with its ground truth by name alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from mrct.io.atomic import atomic_path
from mrct.models.networks import ResnetGenerator, from_network_output, load_trained_generator, to_network_input
from mrct.training.data import read_png_gray

log = logging.getLogger(__name__)

#: direction -> (source column of the manifest, ground-truth column that names the output)
DIRECTION_COLUMNS = {"mr2ct": ("mr_png", "ct_png"), "ct2mr": ("ct_png", "mr_png")}


@torch.no_grad()
def translate_images(generator: ResnetGenerator, images: np.ndarray, batch_size: int = 8,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 [N, H, W] -> uint8 [N, H, W] through ``generator`` (3-channel in, channel mean out)."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    generator = generator.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_network_input(torch.from_numpy(np.array(images[start : start + batch_size]))).to(device)
        out.append(from_network_output(generator(batch)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros_like(images)


def predict_direction(generator: ResnetGenerator, rows: pd.DataFrame, direction: str, out_dir: str | Path,
                      root: str | Path = ".", batch_size: int = 8, device: str | torch.device = "cpu") -> list[Path]:
    """Translate the source PNGs of ``rows`` and write them to ``out_dir`` (atomically, one by one)."""
    source_col, target_col = DIRECTION_COLUMNS[direction]
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = np.stack([read_png_gray(root / p) for p in rows[source_col]])
    predictions = translate_images(generator, images, batch_size, device)
    written = []
    for prediction, truth in zip(predictions, rows[target_col], strict=True):
        target = out_dir / Path(truth).name
        with atomic_path(target) as tmp:
            Image.fromarray(prediction).save(tmp, format="PNG")
        written.append(target)
    log.info("%s: wrote %d predictions to %s", direction, len(written), out_dir)
    return written


def predict_test_split(model_dir: str | Path, manifest: pd.DataFrame, out_dirs: dict[str, str | Path],
                       root: str | Path = ".", batch_size: int = 8, device: str = "cpu") -> dict[str, list[Path]]:
    """Predict the test split in each direction of ``out_dirs`` with ``model_dir``/G_{direction}.pth."""
    rows = manifest[manifest["split"] == "test"].sort_values(["patient", "slice"])
    if rows.empty:
        raise ValueError("manifest: expected at least one test slice, got none")
    written = {}
    for direction, out_dir in out_dirs.items():
        if direction not in DIRECTION_COLUMNS:
            raise ValueError(f"direction must be one of {sorted(DIRECTION_COLUMNS)}, got {direction!r}")
        generator = load_trained_generator(Path(model_dir) / f"G_{direction}.pth", device)
        written[direction] = predict_direction(generator, rows, direction, out_dir, root, batch_size, device)
    return written
