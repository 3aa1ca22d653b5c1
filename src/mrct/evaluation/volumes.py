"""HU metrics of whole synthetic CT volumes against the registered CT, the SynthRAD2023 way.

One row per test patient: the synthetic CT made by translating every axial slice of the registered
MR (``results/translations/{model}/{patient}/sct.nii.gz``), against the registered CT in float HU
(``results/preprocessed/{patient}/ct.nii.gz``), inside the body mask
(``results/preprocessed/{patient}/body_mask.nii.gz``). The metric definitions are in
:func:`mrct.evaluation.hu_metrics.volume_hu_metrics` (SynthRAD2023's MAE, PSNR, SSIM and SynthRAD2025's
MS-SSIM) and :mod:`mrct.evaluation.tissue` (Dice and HD95 of air, soft tissue and bone). Unlike the per-slice HU metrics (from 8-bit PNGs, windowed
and quantised, on a handful of non-adjacent slices), these see the CT's full range and every voxel.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mrct.evaluation.hu_metrics import VOLUME_METRICS, volume_hu_metrics
from mrct.evaluation.metrics import HIGHER_IS_BETTER
from mrct.evaluation.tables import format_value
from mrct.evaluation.tissue import TISSUE_CLASSES, check_thresholds, tissue_overlap
from mrct.io.atomic import write_text_atomic
from mrct.models.registry import model_info

log = logging.getLogger(__name__)

VOLUME_COLUMNS = ["model", "patient", *VOLUME_METRICS, "n_voxels"]
#: Why the table has no anatomical labels (SynthRAD2025 scores TotalSegmentator's on the sCT).
NOT_COMPUTED = ("anatomical labels (TotalSegmentator): not computed, neither it nor its weights are part of "
                "the pipeline's environments")
LABELS = {"mae_hu": "MAE (HU)", "psnr_hu": "PSNR (dB)", "ssim_hu": "SSIM", "ms_ssim_hu": "MS-SSIM",
          **{f"dice_{c}": f"Dice {c}" for c in TISSUE_CLASSES},
          **{f"hd95_{c}_mm": f"HD95 {c} (mm)" for c in TISSUE_CLASSES}}


def _read(path: str | Path) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a volume, file not found")
    return sitk.ReadImage(str(path))


def _check_same_grid(image: sitk.Image, reference: sitk.Image, path: str | Path, reference_path: str | Path) -> None:
    """Voxel-wise metrics need one grid: same size, and geometry equal up to float rounding."""
    checks = [
        ("size", image.GetSize(), reference.GetSize(), 0.0),
        ("spacing", image.GetSpacing(), reference.GetSpacing(), 1e-4),
        ("origin", image.GetOrigin(), reference.GetOrigin(), 1e-3),
        ("direction", image.GetDirection(), reference.GetDirection(), 1e-5),
    ]
    for name, got, expected, tol in checks:
        if not np.allclose(got, expected, rtol=0, atol=tol):
            raise ValueError(f"{path}: expected the grid of {reference_path} ({name} {expected}), got {name} {got}")


def patient_volume_metrics(sct_path: str | Path, ct_path: str | Path, mask_path: str | Path,
                           hu_clip: Sequence[float], tissue_hu: Mapping[str, float]) -> dict[str, float]:
    """The volume metrics of one synthetic CT file against its CT file inside the mask file."""
    ct = _read(ct_path)
    sct, mask = _read(sct_path), _read(mask_path)
    _check_same_grid(sct, ct, sct_path, ct_path)
    _check_same_grid(mask, ct, mask_path, ct_path)
    mask_array = sitk.GetArrayFromImage(mask) > 0
    if not mask_array.any():
        raise ValueError(f"{mask_path}: the body mask is empty")
    sct_hu = sitk.GetArrayFromImage(sct).astype(np.float64)
    ct_hu = sitk.GetArrayFromImage(ct).astype(np.float64)
    values = volume_hu_metrics(sct_hu, ct_hu, mask_array, hu_clip)
    # GetArrayFromImage orders the axes z, y, x; GetSpacing gives x, y, z.
    values.update(tissue_overlap(sct_hu, ct_hu, mask_array, ct.GetSpacing()[::-1], tissue_hu))
    return {**values, "n_voxels": int(mask_array.sum())}


def evaluate_volumes(model: str, patients: Sequence[str], sct_paths: Sequence[str | Path],
                     ct_paths: Sequence[str | Path], mask_paths: Sequence[str | Path],
                     hu_clip: Sequence[float], tissue_hu: Mapping[str, float]) -> pd.DataFrame:
    """One row per patient (``VOLUME_COLUMNS``), in the order given."""
    check_thresholds(tissue_hu)
    lengths = {len(patients), len(sct_paths), len(ct_paths), len(mask_paths)}
    if len(lengths) != 1:
        raise ValueError(f"expected one sCT, CT and mask per patient, got {len(patients)} patients, "
                         f"{len(sct_paths)} sCTs, {len(ct_paths)} CTs, {len(mask_paths)} masks")
    records = []
    for patient, sct, ct, mask in zip(patients, sct_paths, ct_paths, mask_paths, strict=True):
        values = patient_volume_metrics(sct, ct, mask, hu_clip, tissue_hu)
        log.info("%s %s: MAE %.1f HU, PSNR %.2f dB, SSIM %.4f, MS-SSIM %.4f, bone Dice %.3f over %d voxels",
                 model, patient, values["mae_hu"], values["psnr_hu"], values["ssim_hu"], values["ms_ssim_hu"],
                 values["dice_bone"], values["n_voxels"])
        records.append({"model": model, "patient": patient, **values})
    return pd.DataFrame.from_records(records, columns=VOLUME_COLUMNS)


def check_test_patients(patients: Sequence[str], manifest: pd.DataFrame) -> None:
    """The volumes evaluated must be exactly the manifest's test patients (no more, no fewer)."""
    expected = sorted(set(manifest.loc[manifest["split"] == "test", "patient"].astype(str)))
    if sorted(patients) != expected:
        raise ValueError(f"volume metrics: expected the manifest's test patients {expected}, got {sorted(patients)}")


def summarize_volumes(volumes: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Mean and STD (sample, ddof=1) over patients of each metric, one row per model, in order."""
    records = []
    for model in models:
        own = volumes[volumes["model"] == model]
        if own.empty:
            raise ValueError(f"volume metrics of {model!r}: expected one row per test patient, got none")
        record = {"model": model, "category": model_info(model)["category"], "n_patients": len(own)}
        for metric in VOLUME_METRICS:
            values = own[metric].astype(float).dropna()
            record[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
            record[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records)


def volume_table_cells(table: pd.DataFrame) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and rows of (text, is_best) cells: mean ± STD, arrows say which way is better."""
    header = ["Model", "Category", "Patients"] + [
        f"{LABELS[m]} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in VOLUME_METRICS
    ]
    rows = []
    for _, row in table.iterrows():
        cells = [(str(row["model"]), False), (str(row["category"]), False), (str(row["n_patients"]), False)]
        for m in VOLUME_METRICS:
            column = table[f"{m}_mean"]
            best = column.max() if HIGHER_IS_BETTER[m] else column.min()
            text = f"{format_value(row[f'{m}_mean'], m)} ± {format_value(row[f'{m}_std'], m)}"
            cells.append((text, bool(row[f"{m}_mean"] == best)))
        rows.append(cells)
    return header, rows


def volumes_markdown(table: pd.DataFrame) -> str:
    """Mean ± STD over test patients; the best mean per metric in bold."""
    header, rows = volume_table_cells(table)
    lines = ["### MR → CT on whole volumes (SynthRAD2023 MAE, PSNR, SSIM; SynthRAD2025 MS-SSIM; tissue overlap; body mask)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = ["", f"Tissue classes by HU inside the body mask; {NOT_COMPUTED}."]
    for cells in rows:
        lines.append("| " + " | ".join(f"**{text}**" if best else text for text, best in cells) + " |")
    return "\n".join(lines + notes) + "\n"


def write_volume_tables(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    write_text_atomic(csv_path, table.to_csv(index=False))
    write_text_atomic(md_path, volumes_markdown(table))
