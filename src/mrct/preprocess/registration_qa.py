"""Registration quality in numbers: normalised mutual information and head-mask Dice.

A wrongly paired MR (another patient's head) is still "registered": the optimiser stops
somewhere and reports a metric value. Nothing in that value says the pair is wrong, so every
registered patient gets two numbers on the CT grid, both inside the MR's field of view:

* **Dice of the head masks**: the MR head mask moved onto the CT grid (nearest neighbour) against
  the CT head mask. Both are cut to the MR's field of view first, so an MR that covers only part
  of the head (a slab) is judged on the part it shows, not penalised for the part it lacks.
* **Normalised mutual information** (Studholme's ``(H(CT) + H(MR)) / H(CT, MR)``, 1 for
  independent images, 2 for one image against itself) inside the CT head mask and the field of
  view. Normalised rather than Mattes MI (the registration's own metric): MI grows with the
  entropy of the images and with the region, so its value differs between patients with the
  same alignment quality; the ratio is bounded and overlap-invariant, so one bound serves all.
  Each image is quantised into equal-frequency bins (its quantiles inside the region), which
  makes the figure independent of the scanner's units, of the MR's scaling and of how much of
  the head is bone, so bounds carry over between patients and data sets.

The numbers are computed by the ``registration_qa`` rule from the files the ``register`` rule
writes; the bounds are applied when the per-patient numbers are collected into one table, so
tuning a bound reruns neither registration nor the metrics.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from skimage.metrics import normalized_mutual_information

from mrct.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

#: Columns of the collected table (results/preprocessed/registration_qa.csv).
QA_COLUMNS = ["patient", "dice_head", "nmi", "head_in_fov", "flagged", "reason"]
#: Quantile bins per image for NMI: enough to separate air, CSF, grey and white matter, diploe
#: and bone, few enough that a 2 mm head (about 10^5 voxels) fills the 32 x 32 joint histogram.
NMI_BINS = 32


def field_of_view(moving: sitk.Image, fixed: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """Voxels of the fixed grid whose transformed point lies inside the moving image (uint8)."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    return sitk.Resample(ones, fixed, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def move_mask(mask: sitk.Image, fixed: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """A binary mask moved onto the fixed grid; nearest neighbour keeps it binary."""
    return sitk.Resample(sitk.Cast(mask, sitk.sitkUInt8), fixed, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def dice(a: np.ndarray, b: np.ndarray, within: np.ndarray | None = None) -> float:
    """Dice overlap ``2|A & B| / (|A| + |B|)`` of two binary arrays, counted inside ``within``.

    Written out rather than taken from a library: it is one line, and the restriction to a
    region is what matters here. NaN when both are empty there (no overlap to judge).
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"dice: masks need one shape, got {a.shape} and {b.shape}")
    if within is not None:
        within = np.asarray(within, bool)
        a, b = a & within, b & within
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else float("nan")


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index (0 .. bins-1) of every value by the values' own quantiles (equal-frequency bins).

    Tied values (air, a flat tissue class) share a bin, so a constant image has one bin and no
    entropy, as it should.
    """
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None,
                                  bins: int = NMI_BINS) -> float:
    """Studholme's NMI ``(H(A) + H(B)) / H(A, B)`` of two images inside ``region``, quantile-binned.

    The entropies come from scikit-image: the images are binned here into integer labels
    (``quantile_bins``), and integer labels spanning at most ``bins`` values fall one per bin of
    scikit-image's equal-width histogram over their range, so its NMI is that of the labels.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"normalised mutual information: images need one shape, got {a.shape} and {b.shape}")
    if region is not None:
        a, b = a[np.asarray(region, bool)], b[np.asarray(region, bool)]
    if a.size < bins:
        raise ValueError(f"normalised mutual information: {a.size} voxels in the region, expected at least {bins}")
    labels_a, labels_b = quantile_bins(a.ravel(), bins), quantile_bins(b.ravel(), bins)
    if labels_a.max() == labels_a.min() and labels_b.max() == labels_b.min():
        return 2.0  # both constant: H(A) = H(B) = H(A, B) = 0, identical information
    return float(normalized_mutual_information(labels_a, labels_b, bins=bins))


def registration_metrics(ct: sitk.Image, mr_on_ct: sitk.Image, ct_mask: sitk.Image, mr_mask: sitk.Image,
                         transform: sitk.Transform) -> dict[str, float]:
    """Dice of the head masks and NMI of the images, both inside the MR's field of view on the CT grid.

    ``mr_mask`` is in the MR's own space (its grid is the MR's, so it also gives the field of
    view); ``transform`` maps CT points to MR points, as the registration writes it.
    """
    fov = sitk.GetArrayFromImage(field_of_view(mr_mask, ct, transform)) > 0
    ct_head = sitk.GetArrayFromImage(ct_mask) > 0
    mr_head = sitk.GetArrayFromImage(move_mask(mr_mask, ct, transform)) > 0
    region = ct_head & fov
    # Too few voxels of the CT's head in the MR's view for a joint histogram: no NMI (NaN,
    # which fails any bound), as the MR does not show the CT's head.
    nmi = float("nan") if region.sum() < NMI_BINS else normalised_mutual_information(
        sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(mr_on_ct), region)
    return {"dice_head": dice(ct_head, mr_head, within=fov), "nmi": nmi,
            "head_in_fov": float(region.sum() / max(int(ct_head.sum()), 1))}


def registration_qa_files(ct_path: str, mr_path: str, ct_mask_path: str, mr_mask_path: str, transform_path: str,
                          out: str, patient: str) -> dict[str, Any]:
    """The ``registration_qa`` rule: read the registered files, write the numbers as JSON."""
    images = {name: sitk.ReadImage(str(path)) for name, path in
              (("ct", ct_path), ("mr", mr_path), ("ct_mask", ct_mask_path), ("mr_mask", mr_mask_path))}
    transform = sitk.ReadTransform(str(transform_path))
    record = {"patient": patient, **registration_metrics(images["ct"], images["mr"], images["ct_mask"],
                                                         images["mr_mask"], transform)}
    log.info("%s: head-mask Dice %.3f, NMI %.3f, %.0f %% of the CT head in the MR's field of view",
             patient, record["dice_head"], record["nmi"], 100 * record["head_in_fov"])
    write_text_atomic(out, json.dumps(record, indent=2) + "\n")
    return record


def flag_reason(record: Mapping[str, Any], min_dice: float, min_nmi: float) -> str:
    """Why a patient's registration is not trusted ('' when it is)."""
    reasons = []
    if not record["dice_head"] >= min_dice:  # NaN fails too
        reasons.append(f"head-mask Dice {record['dice_head']:.3f} < {min_dice}")
    if not record["nmi"] >= min_nmi:
        reasons.append(f"NMI {record['nmi']:.3f} < {min_nmi}")
    return "; ".join(reasons)


def collect_registration_qa(paths: Iterable[str | Path], min_dice: float, min_nmi: float) -> pd.DataFrame:
    """One row per patient from the per-patient JSON files, with ``flagged`` and ``reason``."""
    rows = []
    for path in paths:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        missing = {"patient", "dice_head", "nmi", "head_in_fov"} - set(record)
        if missing:
            raise ValueError(f"{path}: registration QA record lacks {sorted(missing)}")
        reason = flag_reason(record, min_dice, min_nmi)
        rows.append({**{k: record[k] for k in QA_COLUMNS[:4]}, "flagged": bool(reason), "reason": reason})
    table = pd.DataFrame(rows, columns=QA_COLUMNS).sort_values("patient").reset_index(drop=True)
    for row in table[table["flagged"]].itertuples():
        log.warning("%s: registration flagged (%s): check its QA figure for a mixed-up pair or a failed registration",
                    row.patient, row.reason)
    return table


def write_registration_qa(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")


def read_registration_qa(path: str | Path) -> pd.DataFrame:
    """The collected table, checked for its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: registration QA table not found (run the `registration_qa_table` rule)")
    table = pd.read_csv(path, dtype={"patient": str, "reason": str}, keep_default_na=False,
                        na_values={"dice_head": [""], "nmi": [""], "head_in_fov": [""]})
    missing = [c for c in QA_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: expected columns {QA_COLUMNS}, missing {missing}")
    table["flagged"] = table["flagged"].astype(str).str.lower().isin(["true", "1"])
    return table


def excluded_patients(table: pd.DataFrame, keep_flagged: bool) -> dict[str, str]:
    """Patient -> reason, for the flagged patients that training and evaluation leave out."""
    if keep_flagged:
        return {}
    flagged = table[table["flagged"]]
    return dict(zip(flagged["patient"].astype(str), flagged["reason"].astype(str), strict=True))
