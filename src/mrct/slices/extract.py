"""Axial slice extraction: which slices, how they are scaled to 16-bit levels, and their table rows.

Which slices qualify is decided by the head mask (fraction of the slice covered by head), so the
choice follows the data rather than fixed slice numbers. CT uses a fixed HU window (physical
units); MR uses robust percentiles inside the head (arbitrary units differ per scanner).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mrct.io.png import write_gray_png
from mrct.slices.geometry import to_levels, to_square
from mrct.slices.manifest import SLICE_TABLE_COLUMNS, evenly_spaced


def choose_slices(mask: np.ndarray, min_head_fraction: float, per_patient: int | None) -> list[int]:
    """Axial indices whose head fraction reaches ``min_head_fraction``, evenly thinned to ``per_patient``."""
    fractions = mask.reshape(mask.shape[0], -1).mean(axis=1)
    qualifying = np.flatnonzero(fractions >= min_head_fraction)
    if qualifying.size == 0:
        raise ValueError(f"no axial slice has a head fraction >= {min_head_fraction} (largest: {fractions.max():.3f})")
    return [int(qualifying[i]) for i in evenly_spaced(qualifying.size, per_patient)]


def mr_window(mr: np.ndarray, mask: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    values = mr[mask > 0]
    low, high = np.percentile(values, percentiles)
    if not high > low:
        raise ValueError(f"MR intensities inside the head are constant ({low}); cannot scale to stored levels")
    return float(low), float(high)


def extract_patient_slices(mr: sitk.Image, ct: sitk.Image, mask: sitk.Image, patient: str,
                           settings: dict[str, Any], out_dir: str | Path, synthetic: bool) -> pd.DataFrame:
    """Write MR, CT and mask PNGs of the chosen slices; return the patient's slice table."""
    out_dir = Path(out_dir)
    mr_a, ct_a = sitk.GetArrayFromImage(mr), sitk.GetArrayFromImage(ct)
    mask_a = sitk.GetArrayFromImage(mask) > 0
    size = settings["size"]
    ct_lo, ct_hi = (float(v) for v in settings["ct_window_hu"])
    mr_lo, mr_hi = mr_window(mr_a, mask_a, settings["mr_percentiles"])
    rows = []
    for z in choose_slices(mask_a, settings["min_head_fraction"], settings["per_patient"]):
        name = f"{patient}_z{z:03d}.png"
        paths = {kind: out_dir / kind / name for kind in ("mr", "ct", "mask")}
        write_gray_png(to_levels(to_square(mr_a[z], size, background=mr_lo), mr_lo, mr_hi), paths["mr"])
        write_gray_png(to_levels(to_square(ct_a[z], size, background=ct_lo), ct_lo, ct_hi), paths["ct"])
        write_gray_png((to_square(mask_a[z].astype(float), size, order=0) > 0.5).astype(np.uint8) * 255, paths["mask"])
        rows.append({
            "patient": patient, "slice": z,
            "mr_png": str(paths["mr"]), "ct_png": str(paths["ct"]), "mask_png": str(paths["mask"]),
            "ct_lo_hu": ct_lo, "ct_hi_hu": ct_hi, "mr_lo": mr_lo, "mr_hi": mr_hi,
            "rows": mr_a.shape[1], "cols": mr_a.shape[2],
            "head_fraction": float(mask_a[z].mean()), "synthetic": synthetic,
        })
    return pd.DataFrame(rows, columns=SLICE_TABLE_COLUMNS)
