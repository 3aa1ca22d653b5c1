"""The train/test split, by patient: slices of one patient never end up on both sides.

Patients whose registration is flagged (``mrct.preprocess.registration_qa``) are left out of
the manifest: they have no rows, so neither training nor evaluation sees them, and the
manifest keeps its interface (``split`` is ``train`` or ``test``). The split is drawn over all
patients before they are left out, so flagging or fixing one patient never moves another
patient to the other side.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
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


def build_manifest(tables: Iterable[str | Path], train_fraction: float, seed: int,
                   excluded: Collection[str] = ()) -> pd.DataFrame:
    """Concatenate per-patient slice tables, add the split column, drop the ``excluded`` patients."""
    frames = []
    for path in tables:
        frame = pd.read_csv(path)
        if frame.empty:
            raise ValueError(f"{path}: the patient has no slices (check slices.min_head_fraction)")
        frames.append(frame)
    manifest = pd.concat(frames, ignore_index=True)
    split = assign_split(manifest["patient"].astype(str), train_fraction, seed)
    manifest["split"] = manifest["patient"].astype(str).map(split)
    manifest = manifest[~manifest["patient"].astype(str).isin(set(excluded))]
    empty = sorted({"train", "test"} - set(manifest["split"]))
    if empty:
        raise ValueError(f"no patient left in the {' and '.join(empty)} split after leaving out the flagged "
                         f"patients {sorted(excluded)}: check their registration, or keep them "
                         "(preprocess.registration_qa.keep_flagged)")
    return manifest[list(MANIFEST_COLUMNS)].sort_values(["patient", "slice"]).reset_index(drop=True)


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False)
