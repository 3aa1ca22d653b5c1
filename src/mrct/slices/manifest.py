"""The slice manifest: the one table every stage after slicing reads.

It lists, per slice, the PNG paths, the split, and what is needed to map the PNGs back to
physical units (CT window in HU, MR scaling) and to the original slice shape.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: Columns and their types; ``read_manifest`` insists on all of them.
MANIFEST_COLUMNS: dict[str, str] = {
    "patient": "string",
    "slice": "int64",
    "split": "string",
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

#: Columns of a per-patient slice table (the manifest before the split is assigned).
SLICE_TABLE_COLUMNS = [c for c in MANIFEST_COLUMNS if c != "split"]


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read and check a manifest; errors name the file and the missing columns or bad values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (run the `split` rule first)")
    table = pd.read_csv(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing manifest columns {missing}")
    bad_split = sorted(set(table["split"]) - {"train", "test"})
    if bad_split:
        raise ValueError(f"{path}: column 'split' must be train or test, found {bad_split}")
    return table.astype(MANIFEST_COLUMNS)


def test_split_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows of the test split, in a stable order (patient, slice)."""
    return manifest[manifest["split"] == "test"].sort_values(["patient", "slice"]).reset_index(drop=True)


def train_split_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows of the train split, in a stable order (patient, slice)."""
    return manifest[manifest["split"] == "train"].sort_values(["patient", "slice"]).reset_index(drop=True)
