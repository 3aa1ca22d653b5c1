"""Tiny synthetic slice sets with a valid manifest, for the training/prediction tests.

Each slice is a 16x16 "head": an ellipse whose CT is bright at the rim (bone) and whose MR is
bright inside, with a per-slice shift, so that MR and CT are related but not identical. These are
8-bit PNGs, as slices were stored before. ``bits=16`` writes what the pipeline stores now: 16-bit
levels of a head drawn in physical units (``_brain_images``: HU with white and grey matter, CSF
and skull), CT over [-1024, 3000] HU and MR over [0, 1000].
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


#: Tissues of ``_brain_images``: (CT in HU, T1-like MR), and the stored windows of the 16-bit set.
TISSUES = {"air": (-1000.0, 0.0), "scalp": (-80.0, 900.0), "skull": (1200.0, 60.0),
           "grey": (38.0, 550.0), "white": (25.0, 750.0), "csf": (5.0, 150.0)}
CT_WINDOW_16, MR_WINDOW_16 = (-1024.0, 3000.0), (0.0, 1000.0)


def brain_tissues(size: int, cy: float = 0.0, cx: float = 0.0) -> np.ndarray:
    """A label image of TISSUES' names: scalp, skull, a thick grey-matter cortex, white matter, CSF."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    r = np.sqrt(((yy - cy) / 0.44) ** 2 + ((xx - cx) / 0.38) ** 2)
    ventricle = np.minimum(np.hypot((yy - cy) / 0.12, (xx - cx - 0.06) / 0.04),
                           np.hypot((yy - cy) / 0.12, (xx - cx + 0.06) / 0.04)) < 1
    labels = np.full((size, size), "air", dtype=object)
    for name, outer in (("scalp", 1.0), ("skull", 0.92), ("grey", 0.8), ("white", 0.5)):
        labels[r < outer] = name
    labels[ventricle & (r < 0.5)] = "csf"
    return labels


def _brain_images(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16-bit MR and CT levels of a ``brain_tissues`` head (CT noise 1.5 HU), and its 8-bit mask."""
    labels = brain_tissues(size, *rng.uniform(-0.03, 0.03, 2))
    ct = np.vectorize(lambda t: TISSUES[t][0])(labels) + rng.normal(0, 1.5, (size, size))
    mr = np.vectorize(lambda t: TISSUES[t][1])(labels) + rng.normal(0, 10, (size, size))

    def to16(values, window):
        return np.rint(np.clip((values - window[0]) / (window[1] - window[0]), 0, 1) * 65535).astype(np.uint16)

    return to16(mr, MR_WINDOW_16), to16(ct, CT_WINDOW_16), ((labels != "air") * 255).astype(np.uint8)


def write_tiny_dataset(
    root: Path, patients: dict[str, str] | None = None, n_slices: int = 3, size: int = 16, seed: int = 0,
    bits: int = 8,
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
            images = _slice_images(rng, size) if bits == 8 else _brain_images(rng, size)
            for kind, image in zip(("mr", "ct", "mask"), images, strict=True):
                rel = Path("results/slices") / patient / kind / f"{patient}_z{z:03d}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / rel)
                paths[f"{kind}_png"] = str(rel)
            rows.append({
                "patient": patient, "slice": z, "split": split, "fold": 0 if split == "test" else -1, **paths,
                "ct_lo_hu": -1024.0 if bits == 8 else CT_WINDOW_16[0], "ct_hi_hu": 2000.0 if bits == 8 else CT_WINDOW_16[1],
                "mr_lo": 0.0, "mr_hi": 1000.0,
                "rows": 20, "cols": 18, "head_fraction": 0.5, "synthetic": True,
            })
    table = pd.DataFrame(rows)[list(MANIFEST_COLUMNS)]
    path = root / "results/slices/manifest.csv"
    table.to_csv(path, index=False)
    return path
