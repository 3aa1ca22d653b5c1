"""The train/test split, by patient: slices of one patient never end up on both sides.

With ``split.folds`` k > 1 the patients are dealt to k folds (:func:`patient_folds`) and every
patient is tested once: the manifest's ``split`` is then ``test`` for every patient and its
``fold`` column says in which fold; each run (:mod:`mrct.slices.sweep`) reads its own manifest
(:func:`run_manifest`), whose ``split`` is that run's train/test split.

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
from mrct.slices.sweep import NEVER_TESTED, Run, selection_patients, training_patients


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


def patient_folds(patients: Iterable[str], folds: int, train_fraction: float, seed: int) -> dict[str, int]:
    """Patient -> the fold in which it is tested (``NEVER_TESTED`` for training-only patients).

    ``folds`` 1: the single split by ``train_fraction`` (:func:`assign_split`):
    its test patients are fold 0. ``folds`` k > 1: the patients, in a seeded random order, are
    dealt to the k folds in turn, so fold sizes differ by at most one and every patient is tested
    exactly once. Seeded and independent of the input order.
    """
    ids = sorted(set(patients))
    if folds == 1:
        split = assign_split(ids, train_fraction, seed)
        return {p: 0 if split[p] == "test" else NEVER_TESTED for p in ids}
    if folds > len(ids):
        raise ValueError(f"split.folds ({folds}) is more than the number of patients ({len(ids)}): "
                         "every fold needs at least one test patient")
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i]: position % folds for position, i in enumerate(order)}



def build_manifest(tables: Iterable[str | Path], train_fraction: float, seed: int,
                   excluded: Collection[str] = (), folds: int = 1) -> pd.DataFrame:
    """Concatenate per-patient slice tables, add the split and fold columns, drop the ``excluded``
    patients. ``split`` is ``test`` for every patient some fold tests (all of them with folds > 1)."""
    frames = []
    for path in tables:
        frame = pd.read_csv(path)
        if frame.empty:
            raise ValueError(f"{path}: the patient has no slices (check slices.min_head_fraction)")
        frames.append(frame)
    manifest = pd.concat(frames, ignore_index=True)
    fold = patient_folds(manifest["patient"].astype(str), folds, train_fraction, seed)
    manifest["fold"] = manifest["patient"].astype(str).map(fold).astype("int64")
    manifest["split"] = np.where(manifest["fold"] == NEVER_TESTED, "train", "test")
    manifest = manifest[~manifest["patient"].astype(str).isin(set(excluded))]
    empty = sorted({"train", "test"} - set(manifest["split"])) if folds == 1 else []
    if empty:
        raise ValueError(f"no patient left in the {' and '.join(empty)} split after leaving out the flagged "
                         f"patients {sorted(excluded)}: check their registration, or keep them "
                         "(preprocess.registration_qa.keep_flagged)")
    empty_folds = sorted(set(range(folds)) - set(manifest["fold"])) if folds > 1 else []
    if empty_folds:
        raise ValueError(f"no test patient left in fold(s) {empty_folds} of split.folds ({folds}) after leaving "
                         f"out the flagged patients {sorted(excluded)}: check their registration, keep them "
                         "(preprocess.registration_qa.keep_flagged), or use fewer folds")
    return manifest[list(MANIFEST_COLUMNS)].sort_values(["patient", "slice"]).reset_index(drop=True)


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False)


def run_manifest(manifest: pd.DataFrame, run: Run, seed: int) -> pd.DataFrame:
    """The manifest one run trains and predicts with: the test patients of ``run.fold`` as
    ``test``, its training patients (all, or the nested subset of ``run.n_train``) as ``train``;
    other patients are left out. Every stage reads it through ``split_rows`` as before."""
    folds = manifest.groupby("patient")["fold"].first().to_dict()
    train = set(training_patients({str(p): int(f) for p, f in folds.items()}, run.fold, run.n_train, seed))
    test = manifest["fold"] == run.fold
    rows = manifest[test | manifest["patient"].astype(str).isin(train)].copy()
    rows["split"] = np.where(rows["fold"] == run.fold, "test", "train")
    if not (rows["split"] == "train").any() or not (rows["split"] == "test").any():
        raise ValueError(f"run {run}: expected train and test patients, got {sorted(set(rows['split']))}")
    return rows.reset_index(drop=True)


def check_reader_study_slices(manifest: pd.DataFrame, images_per_modality: int, n_selection: int,
                              seed: int) -> None:
    """The exact check the DAG could only bound: enough test slices of the reader-study patients.

    The reader study shows ``images_per_modality / 2`` test slices per direction, drawn from the
    tested patients less the ``n_selection`` on which its model is chosen; known only now that
    the slices are cut and flagged patients left out, before any training job.
    """
    tested = sorted(manifest.loc[manifest["split"] == "test", "patient"].astype(str).unique())
    chosen = set(selection_patients(tested, n_selection, seed))
    readers = [p for p in tested if p not in chosen]
    if not readers:
        raise ValueError(f"reader_study.selection_patients ({n_selection}) leaves none of the {len(tested)} "
                         "tested patients for the reader study")
    available = int(manifest["patient"].astype(str).isin(readers).sum())
    needed = images_per_modality // 2
    if available < needed:
        raise ValueError(
            f"reader_study.images_per_modality ({images_per_modality}) needs {needed} test slices per "
            f"direction, but the {len(readers)} reader-study patients (tested, not selection patients) "
            f"have {available}: lower it, or test more patients (split.folds)")


def check_design(patients: Collection[str], folds: int, train_fraction: float, seed: int,
                 train_sizes: Collection[int], reader_study: dict, per_patient: int | None) -> None:
    """Fail before any job runs when the config cannot finish with these patients.

    Called while the DAG is built (``rules/common.smk``), so the counts are upper bounds: patients
    that registration QA leaves out are not known yet, nor (without ``slices.per_patient``) how
    many slices a patient gives; rule split repeats the exact check (:func:`check_reader_study_slices`).
    Every error names the config key and both numbers.
    """
    n = len(set(patients))
    if folds > n:
        raise ValueError(f"split.folds ({folds}) is more than the number of patients ({n}): every fold needs "
                         "at least one test patient")
    fold_of = patient_folds(patients, folds, train_fraction, seed)
    tested = [p for p, f in fold_of.items() if f != NEVER_TESTED]
    smallest = min(sum(1 for f in fold_of.values() if f != k) for k in range(folds))
    too_large = [size for size in train_sizes if size >= smallest]
    if too_large:
        raise ValueError(f"split.train_sizes ({sorted(train_sizes)}): {too_large} not below the {smallest} training "
                         "patients of the smallest fold (the full training set always runs besides them)")
    n_selection = 0 if reader_study.get("model") else int(reader_study.get("selection_patients", 1))
    readers = len(tested) - n_selection
    if readers < 1:
        raise ValueError(f"reader_study.selection_patients ({n_selection}) leaves none of the {len(tested)} tested "
                         f"patients for the reader study: choose fewer, test more patients (split.folds), or name "
                         "reader_study.model")
    needed = int(reader_study["images_per_modality"]) // 2
    if per_patient is not None and needed > per_patient * readers:
        raise ValueError(
            f"reader_study.images_per_modality ({reader_study['images_per_modality']}) needs {needed} test slices per "
            f"direction, but the {readers} reader-study patients give at most {per_patient * readers} "
            f"(slices.per_patient {per_patient} x {readers}): lower it, or test more patients (split.folds)")
