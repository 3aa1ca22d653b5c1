"""The slice manifest: the one table every stage after slicing reads.

It lists, per slice, the PNG paths, the split, and what is needed to map the PNGs back to
physical units (CT window in HU, MR scaling) and to the original slice shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns and their types; ``read_manifest`` insists on all of them.
MANIFEST_COLUMNS: dict[str, str] = {
    "patient": "string",
    "slice": "int64",
    "split": "string",
    # The fold in which the patient is tested; -1: a training patient of the single split
    # (split.folds 1), never tested. A manifest without it is read as the single split.
    "fold": "int64",
    "mr_png": "string",
    "ct_png": "string",
    "mask_png": "string",
    "ct_lo_hu": "float64",
    "ct_hi_hu": "float64",
    "mr_lo": "float64",
    "mr_hi": "float64",
    "rows": "int64",
    "cols": "int64",
    "head_fraction": "float64",
    "synthetic": "bool",
}

SPLITS = ("train", "test")

#: Columns of a per-patient slice table (the manifest before the split is assigned).
SLICE_TABLE_COLUMNS = [c for c in MANIFEST_COLUMNS if c not in ("split", "fold")]


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read and check a manifest; errors name the file and the missing columns or bad values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (run the `split` rule first)")
    table = pd.read_csv(path)
    if "fold" not in table.columns and "split" in table.columns:
        table["fold"] = np.where(table["split"] == "test", 0, -1)
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing manifest columns {missing}")
    bad_split = sorted(set(table["split"]) - set(SPLITS))
    if bad_split:
        raise ValueError(f"{path}: column 'split' must be train or test, found {bad_split}")
    return table.astype(MANIFEST_COLUMNS)


def split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of one split in volume order (patient, slice): the one place a split is selected.

    Every stage that reads a split (training, prediction, evaluation, latent space, figures)
    goes through here, so they all see the same slices in the same order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rows = manifest[manifest["split"] == split].sort_values(["patient", "slice"]).reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"manifest: expected at least one {split} slice, got none")
    return rows


def evenly_spaced(count: int, k: int | None) -> np.ndarray:
    """Indices of ``k`` items spread evenly over ``count`` (all of them when ``k`` is None or larger).

    Used wherever a fixed, reproducible subset is drawn: slices of a volume, slices of the test
    split for figures and the latent space. The first and last item are always included.
    """
    if k is None or k >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, num=k).round().astype(int))


@dataclass(frozen=True)
class Direction:
    """One translation direction: which modality goes in, which comes out, and their columns."""

    name: str
    source: str
    target: str
    title: str

    @property
    def source_column(self) -> str:
        """Manifest column of the network's input PNG."""
        return f"{self.source}_png"

    @property
    def target_column(self) -> str:
        """Manifest column of the ground truth; predictions carry its file name."""
        return f"{self.target}_png"


#: The two directions, in the order of every table and figure.
DIRECTIONS: dict[str, Direction] = {
    "mr2ct": Direction("mr2ct", "mr", "ct", "MR → CT (synthetic CT vs. real CT)"),
    "ct2mr": Direction("ct2mr", "ct", "mr", "CT → MR (synthetic MR vs. real MR)"),
}


def direction(name: str) -> Direction:
    """The direction called ``name``; an error lists the valid ones."""
    if name not in DIRECTIONS:
        raise ValueError(f"direction must be one of {list(DIRECTIONS)}, got {name!r}")
    return DIRECTIONS[name]
