"""Registration quality in numbers, and the decision which patients the study keeps.

A wrongly paired MR (another patient's head) is still "registered": the optimiser stops
somewhere and reports a metric value. Nothing in that value says the pair is wrong, so every
registered patient gets these figures on the CT grid, inside the MR's field of view:

* **Dice of the head masks**: the MR head mask moved onto the CT grid (nearest neighbour) against
  the CT head mask. Both are cut to the MR's field of view first, so an MR that covers only part
  of the head (a slab) is judged on the part it shows, not penalised for the part it lacks.
* **Normalised mutual information** (Studholme's ``(H(CT) + H(MR)) / H(CT, MR)``, 1 for
  independent images, 2 for one image against itself) inside the CT head mask and the field of
  view, each image quantised into equal-frequency bins (its quantiles inside the region), so
  that the figure does not depend on the scanner's units or the MR's scaling. Its *scale* still
  depends on noise, contrast, field of view and what the CT holds: correct real-head pairs score
  about 1.05 where correct demo pairs score 1.10-1.18, and a mix-up 1.01-1.04. No absolute bound
  serves every scanner, so NMI decides nothing by default.
* **How sharply NMI peaks at the found alignment** (``peak_metrics``): NMI after 12 deliberate
  moves of a few mm / degrees, as shares of the patient's own ``NMI - 1``. A true pair loses
  about half of it (``peak_drop`` about 0.5), another head's MR far less, and a registration that
  stopped short finds a nearby move that fits better (``nearby_gain`` above 0). These ratios
  carry over between scanners; the bounds were set on real-head cases (docs/running.md,
  "Registration QA").

The figures are computed by the ``registration_qa`` rule from the files the ``register`` rule
writes; the bounds are applied when the per-patient figures are collected into one table, so
tuning a bound reruns neither registration nor the figures. When the decision would leave too
few patients for a study, it stops with every patient's figures and the config lines to go on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from skimage.metrics import normalized_mutual_information

from mrct.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

#: Per-patient figures, as the ``registration_qa`` rule writes them.
FIGURE_COLUMNS = ["patient", "dice_head", "nmi", "head_in_fov", "peak_drop", "nearby_gain"]
#: Columns of the collected table (results/preprocessed/registration_qa.csv).
QA_COLUMNS = [*FIGURE_COLUMNS, "flagged", "reason", "decision"]
#: Quantile bins per image for NMI: enough to separate air, CSF, grey and white matter, diploe
#: and bone, few enough that a 2 mm head (about 10^5 voxels) fills the 32 x 32 joint histogram.
NMI_BINS = 32
#: Probe moves around the found alignment (see ``peak_metrics``), and the grid they are measured on.
PROBE_MM = 4.0
PROBE_DEG = 4.0
PROBE_SPACING_MM = 2.0


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


def probe_grid(ct: sitk.Image, spacing_mm: float = PROBE_SPACING_MM) -> sitk.Image:
    """The CT's extent on a grid of at least ``spacing_mm`` (the probes' grid; empty image).

    The probes measure how NMI falls off over millimetres, which a 2 mm grid resolves; on a
    1 mm scan it costs an eighth of the full grid's time.
    """
    spacing = [max(s, spacing_mm) for s in ct.GetSpacing()]
    size = [max(int(round(n * s / t)), 1) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), spacing, strict=True)]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetDirection(ct.GetDirection())
    # Same physical corner as the CT: the first voxel's corner, not its centre, stays put.
    corner = np.asarray(ct.GetOrigin()) - np.asarray(ct.GetDirection()).reshape(3, 3) @ (np.asarray(ct.GetSpacing()) / 2)
    grid.SetOrigin(tuple(corner + np.asarray(ct.GetDirection()).reshape(3, 3) @ (np.asarray(spacing) / 2)))
    return grid


def _anti_aliased(image: sitk.Image, spacing_mm: float = PROBE_SPACING_MM) -> sitk.Image:
    """``image`` smoothed for sampling at ``spacing_mm`` when it is finer (a 1 mm scan), so the
    figures of a 1 mm scan match those of the same head scanned at 2 mm; as it is otherwise."""
    if min(image.GetSpacing()) >= spacing_mm:
        return image
    return sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), 0.4 * spacing_mm)


def probe_transforms(transform: sitk.Transform, centre: tuple[float, float, float], mm: float = PROBE_MM,
                     degrees: float = PROBE_DEG) -> list[sitk.Transform]:
    """The registration's transform after each of 12 deliberate small moves of the CT point.

    Shifts of ``mm`` either way along each axis, and rotations of ``degrees`` either way about
    each axis through ``centre`` (the CT head's centre): ``x -> transform(move(x))``.
    """
    moves = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            shift = [0.0, 0.0, 0.0]
            shift[axis] = sign * mm
            moves.append(sitk.TranslationTransform(3, shift))
            angles = [0.0, 0.0, 0.0]
            angles[axis] = sign * np.deg2rad(degrees)
            moves.append(sitk.Euler3DTransform(centre, *angles, (0.0, 0.0, 0.0)))
    probes = []
    for move in moves:
        composite = sitk.CompositeTransform(3)
        composite.AddTransform(transform)
        composite.AddTransform(move)  # added last, applied first
        probes.append(composite)
    return probes


def peak_metrics(ct: sitk.Image, mr: sitk.Image, ct_mask: sitk.Image, transform: sitk.Transform,
                 mm: float = PROBE_MM, degrees: float = PROBE_DEG) -> dict[str, float]:
    """How sharply NMI peaks at the found alignment, on the scale of the patient's own NMI.

    ``mr`` is the MR in its own space (the bias-corrected one the registration moved). NMI at
    the found alignment (``n0``) and at 12 probes a few mm / degrees off (``n_p``), all resampled
    the same way (linear) onto one grid and counted in one region (the CT head inside the MR's
    field of view at every probe), so only the alignment differs between them:

    * ``peak_drop = (n0 - mean n_p) / (n0 - 1)``: the share of what MR and CT have in common
      that a small misplacement destroys. A true pair shares fine anatomy (sulci, ventricles,
      skull layers), which a few mm destroys; another head shares mostly the outline and the
      tissue classes, which survive it. Dividing by ``n0 - 1`` takes out the patient's NMI
      scale (noise, contrast, field of view), which a fixed NMI bound cannot.
    * ``nearby_gain = (max n_p - n0) / (n0 - 1)``: above 0 when a probe fits better than the
      registration's answer: the optimiser stopped short of the peak (a failed registration).
    """
    grid = probe_grid(ct)
    ct, mr = _anti_aliased(ct), _anti_aliased(mr)
    ct_on = sitk.GetArrayFromImage(sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32))
    head = sitk.GetArrayFromImage(move_mask(ct_mask, grid, sitk.Transform())) > 0
    if not head.any():
        return {"peak_drop": float("nan"), "nearby_gain": float("nan"), "nmi_probe": float("nan")}
    centre = grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.argwhere(head).mean(0)[::-1]])
    transforms = [transform, *probe_transforms(transform, centre, mm, degrees)]
    region = head.copy()
    images = []
    for probe in transforms:
        region &= sitk.GetArrayFromImage(field_of_view(mr, grid, probe)) > 0
        images.append(sitk.GetArrayFromImage(sitk.Resample(mr, grid, probe, sitk.sitkLinear, 0.0, sitk.sitkFloat32)))
    if region.sum() < NMI_BINS:
        return {"peak_drop": float("nan"), "nearby_gain": float("nan"), "nmi_probe": float("nan")}
    values = np.array([normalised_mutual_information(ct_on, image, region) for image in images])
    shared = values[0] - 1.0
    if not shared > 0:
        return {"peak_drop": float("nan"), "nearby_gain": float("nan"), "nmi_probe": float(values[0])}
    return {"peak_drop": float((values[0] - values[1:].mean()) / shared),
            "nearby_gain": float((values[1:].max() - values[0]) / shared), "nmi_probe": float(values[0])}


def registration_qa_files(ct_path: str, mr_path: str, ct_mask_path: str, mr_mask_path: str, transform_path: str,
                          out: str, patient: str, mr_native_path: str | None = None) -> dict[str, Any]:
    """The ``registration_qa`` rule: read the registered files, write the numbers as JSON.

    ``mr_native_path`` is the MR the registration moved (bias-corrected, its own grid): the
    peak probes resample it through moved transforms. Without it only Dice and NMI are written.
    """
    images = {name: sitk.ReadImage(str(path)) for name, path in
              (("ct", ct_path), ("mr", mr_path), ("ct_mask", ct_mask_path), ("mr_mask", mr_mask_path))}
    transform = sitk.ReadTransform(str(transform_path))
    record = {"patient": patient, **registration_metrics(images["ct"], images["mr"], images["ct_mask"],
                                                         images["mr_mask"], transform)}
    if mr_native_path is not None:
        record |= peak_metrics(images["ct"], sitk.ReadImage(str(mr_native_path), sitk.sitkFloat32),
                               images["ct_mask"], transform)
    log.info("%s: head-mask Dice %.3f, NMI %.3f, %.0f %% of the CT head in the MR's field of view, "
             "NMI peak drop %.3f, nearby gain %.3f", patient, record["dice_head"], record["nmi"],
             100 * record["head_in_fov"], record.get("peak_drop", float("nan")), record.get("nearby_gain", float("nan")))
    write_text_atomic(out, json.dumps(record, indent=2) + "\n")
    return record


#: The figures the decision reads, in the order of the table, and whether each is a lower bound.
BOUND_KEYS = {"min_peak_drop": ("peak_drop", "NMI peak drop", True),
              "max_nearby_gain": ("nearby_gain", "NMI gain a few mm off", False),
              "min_dice": ("dice_head", "head-mask Dice", True),
              "min_nmi": ("nmi", "NMI", True)}


def flag_reason(record: Mapping[str, Any], bounds: Mapping[str, float | None]) -> str:
    """Why a patient's registration is not trusted ('' when it is); a bound set to null is not applied.

    A figure that is missing or NaN fails its bound: the QA could not show the pair is right.
    """
    reasons = []
    for key, (figure, label, lower) in BOUND_KEYS.items():
        bound = bounds.get(key)
        if bound is None:
            continue
        value = record.get(figure, float("nan"))
        value = float("nan") if value is None else float(value)
        if lower and not value >= bound:
            reasons.append(f"{label} {value:.3f} < {bound}")
        elif not lower and not value <= bound:
            reasons.append(f"{label} {value:.3f} > {bound}")
    return "; ".join(reasons)


def pass_reason(record: Mapping[str, Any], bounds: Mapping[str, float | None]) -> str:
    """Why a patient passed: each applied bound with the patient's figure."""
    parts = []
    for key, (figure, label, lower) in BOUND_KEYS.items():
        if bounds.get(key) is not None:
            parts.append(f"{label} {float(record[figure]):.3f} {'>=' if lower else '<='} {bounds[key]}")
    return "passed: " + ", ".join(parts)


def decide(table: pd.DataFrame, bounds: Mapping[str, Any], keep_flagged: bool) -> pd.DataFrame:
    """Add ``flagged``, ``reason`` and ``decision`` (``pass``, ``left out`` or ``kept, flagged``)."""
    rows = table.to_dict("records")
    reasons = [flag_reason(row, bounds) for row in rows]
    out = table.copy()
    out["flagged"] = [bool(r) for r in reasons]
    out["reason"] = [r or pass_reason(row, bounds) for r, row in zip(reasons, rows, strict=True)]
    out["decision"] = ["pass" if not r else ("kept, flagged" if keep_flagged else "left out") for r in reasons]
    return out


def review_order(table: pd.DataFrame, bounds: Mapping[str, Any]) -> list[str]:
    """Patients in the order a person should look at their QA figures, for a report that shows a few.

    Flagged patients first (by id), then the passing ones nearest a bound: a patient's place is
    its best rank over the applied bounds, each ranking the patients by their margin to that bound
    (the smallest margin first; a missing figure counts as none). Ranks, not margins, because the
    figures have different scales (a Dice of 0.95 is as close to 0.90 as a peak drop of 0.40 to
    0.35 only by accident). With no bound applied, the passing patients follow by id.
    """
    table = table.assign(patient=table["patient"].astype(str)).reset_index(drop=True)
    flagged = table["flagged"].astype(bool)
    passing = table[~flagged]
    ranks = []  # among the passing patients only: a flagged one must not push some ranks down and not others
    for key, (figure, _, lower) in BOUND_KEYS.items():
        bound = bounds.get(key)
        if bound is None or figure not in table.columns:
            continue
        values = pd.to_numeric(passing[figure], errors="coerce")
        margin = values - bound if lower else bound - values
        ranks.append(margin.rank(method="min", na_option="top"))
    nearest = pd.concat(ranks, axis=1).min(axis=1) if ranks else pd.Series(0.0, index=passing.index)
    return (sorted(table.loc[flagged, "patient"])
            + passing.assign(nearest=nearest).sort_values(["nearest", "patient"])["patient"].tolist())


def collect_registration_qa(paths: Iterable[str | Path], bounds: Mapping[str, Any],
                            keep_flagged: bool = False) -> pd.DataFrame:
    """One row per patient from the per-patient JSON files, with the figures and the decision."""
    rows = []
    for path in paths:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        missing = {"patient", "dice_head", "nmi", "head_in_fov"} - set(record)
        if missing:
            raise ValueError(f"{path}: registration QA record lacks {sorted(missing)}")
        rows.append({k: record.get(k, float("nan")) for k in FIGURE_COLUMNS})
    table = pd.DataFrame(rows, columns=FIGURE_COLUMNS).sort_values("patient").reset_index(drop=True)
    table = decide(table, bounds, keep_flagged)[QA_COLUMNS]
    for row in table.itertuples():
        figures = ", ".join(f"{c} {getattr(row, c):.3f}" for c in FIGURE_COLUMNS[1:])
        if row.flagged:
            log.warning("%s: registration flagged, %s (%s): %s; check its QA figure for a mixed-up pair or a "
                        "failed registration", row.patient, row.decision, figures, row.reason)
        else:
            log.info("%s: registration passed (%s)", row.patient, figures)
    return table


def write_registration_qa(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")


def read_registration_qa(path: str | Path) -> pd.DataFrame:
    """The collected table, checked for its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: registration QA table not found (run the `registration_qa_table` rule)")
    table = pd.read_csv(path, dtype={"patient": str, "reason": str, "decision": str}, keep_default_na=False,
                        na_values={c: ["", "nan", "NaN"] for c in FIGURE_COLUMNS[1:]})
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


#: Fewest patients a study needs: one to train on and one to test.
MIN_PATIENTS = 2


class RegistrationQAStop(ValueError):
    """QA would leave too few patients to run the study; the message says how to go on."""


def _rounded(value: float, lower: bool) -> float:
    """A bound just past ``value`` (2 decimals), so that the figure passes it."""
    return float(np.floor(value * 100) / 100) if lower else float(np.ceil(value * 100) / 100)


def keep_lines(table: pd.DataFrame) -> str:
    """The config lines that keep every patient: ``keep_flagged``, or bounds the figures pass."""
    lines = ["To keep every patient (flagged ones stay marked in the log and the report), put in your config "
             "file (--configfile):", "preprocess:", "  registration_qa:", "    keep_flagged: true"]
    flagged = table[table["flagged"]]
    relaxed = {}
    for key, (figure, label, lower) in BOUND_KEYS.items():
        failed = re.compile(rf"(?:^|; ){re.escape(label)} \S+ {'<' if lower else '>'} ")
        if not flagged["reason"].astype(str).str.contains(failed).any():
            continue  # no patient fails this bound: leave it as it is
        values = table[figure].astype(float)
        # A missing figure passes no bound: the bound is switched off instead.
        relaxed[key] = None if values.isna().any() else _rounded(float(values.min() if lower else values.max()), lower)
    lines += ["or, to let every patient pass the bounds (check each QA figure first: a mixed-up pair or a failed "
              "registration passes too):", "preprocess:", "  registration_qa:"]
    lines += [f"    {key}: {'null' if value is None else value}" for key, value in relaxed.items()]
    return "\n".join(lines)


def qa_stop_message(table: pd.DataFrame, problem: str) -> str:
    """``problem``, every patient's figures with the decision and why, and the config lines to go on."""
    shown = table[[*FIGURE_COLUMNS, "decision", "reason"]].to_string(index=False, float_format=lambda v: f"{v:.3f}")
    return (f"registration QA: {problem}\n{shown}\n\n{keep_lines(table)}\n"
            "docs/running.md ('Registration QA') says how to read the figures and set the bounds from your data.")


def require_enough_patients(table: pd.DataFrame, keep_flagged: bool, minimum: int = MIN_PATIENTS) -> None:
    """Stop, saying how to go on, when QA leaves fewer than ``minimum`` patients to study."""
    left = int((~table["flagged"]).sum()) if not keep_flagged else len(table)
    if left < minimum:
        raise RegistrationQAStop(qa_stop_message(
            table, f"{len(table) - left} of {len(table)} patients flagged and left out, {left} left; "
                   f"the study needs at least {minimum} (one to train on, one to test)"))


def require_each_group(table: pd.DataFrame, excluded: Collection[str], groups: Mapping[str, str]) -> None:
    """Stop, saying how to go on, when leaving out ``excluded`` empties a group of the split.

    ``groups`` maps every patient to its side (``train``/``test``) or fold, drawn before
    patients are left out.
    """
    left = {groups[p] for p in groups if p not in set(excluded)}
    empty = sorted(set(groups.values()) - left)
    if empty:
        raise RegistrationQAStop(qa_stop_message(
            table, f"leaving out the flagged patients {sorted(excluded)} leaves no patient in the "
                   f"{' and '.join(map(str, empty))} split"))
