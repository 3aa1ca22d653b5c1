"""Tiny synthetic slice sets with a valid manifest, for the training/prediction tests.

Each slice is a 16x16 "head": an ellipse whose CT is bright at the rim (bone) and whose MR is
bright inside, with a per-slice shift, so that MR and CT are related but not identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mrct.slices.manifest import MANIFEST_COLUMNS


def _slice_images(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    cy, cx = rng.uniform(-0.05, 0.05, 2)
    r = np.sqrt(((yy - cy) / 0.42) ** 2 + ((xx - cx) / 0.36) ** 2)
    mask = r < 1
    ct = np.where(mask, 90 + 160 * (r > 0.8), 0) + rng.normal(0, 3, (size, size))
    mr = np.where(mask, 200 - 120 * (r > 0.8) - 40 * r, 0) + rng.normal(0, 3, (size, size))
    to8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return to8(mr), to8(ct), (mask * 255).astype(np.uint8)


def write_tiny_dataset(
    root: Path, patients: dict[str, str] | None = None, n_slices: int = 3, size: int = 16, seed: int = 0
) -> Path:
    """Write PNGs under ``root``/results/slices and the manifest; return the manifest path.

    Paths in the manifest are relative to ``root`` (the working directory of a workflow run).
    """
    patients = patients or {"p01": "train", "p02": "train", "p03": "test"}
    rng = np.random.default_rng(seed)
    rows = []
    for patient, split in patients.items():
        for z in range(n_slices):
            paths = {}
            for kind, image in zip(("mr", "ct", "mask"), _slice_images(rng, size), strict=True):
                rel = Path("results/slices") / patient / kind / f"{patient}_z{z:03d}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / rel)
                paths[f"{kind}_png"] = str(rel)
            rows.append({
                "patient": patient, "slice": z, "split": split, "fold": 0 if split == "test" else -1, **paths,
                "ct_lo_hu": -1024.0, "ct_hi_hu": 2000.0, "mr_lo": 0.0, "mr_hi": 1000.0,
                "rows": 20, "cols": 18, "head_fraction": 0.5, "synthetic": True,
            })
    table = pd.DataFrame(rows)[list(MANIFEST_COLUMNS)]
    path = root / "results/slices/manifest.csv"
    table.to_csv(path, index=False)
    return path
