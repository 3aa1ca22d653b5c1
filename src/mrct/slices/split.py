"""The train/test split, by patient: slices of one patient never end up on both sides."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.io.atomic import atomic_path
from mrct.slices.manifest import MANIFEST_COLUMNS


def assign_split(patients: Iterable[str], train_fraction: float, seed: int) -> dict[str, str]:
    """Patient -> "train" | "test"; seeded, independent of the input order."""
    ids = sorted(set(patients))
    if len(ids) < 2:
        raise ValueError(f"a train/test split needs at least 2 patients, got {len(ids)}: {ids}")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n_train = min(max(round(train_fraction * len(ids)), 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    train = {ids[i] for i in order[:n_train]}
    return {patient: "train" if patient in train else "test" for patient in ids}


def build_manifest(tables: Iterable[str | Path], train_fraction: float, seed: int) -> pd.DataFrame:
    """Concatenate per-patient slice tables and add the split column."""
    frames = []
    for path in tables:
        frame = pd.read_csv(path)
        if frame.empty:
            raise ValueError(f"{path}: the patient has no slices (check slices.min_head_fraction)")
        frames.append(frame)
    manifest = pd.concat(frames, ignore_index=True)
    split = assign_split(manifest["patient"].astype(str), train_fraction, seed)
    manifest["split"] = manifest["patient"].astype(str).map(split)
    return manifest[list(MANIFEST_COLUMNS)].sort_values(["patient", "slice"]).reset_index(drop=True)


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False)
