"""Choosing the reader study's model on patients whose slices the readers never see.

The model shown per direction is the best of several by some metric. Chosen on the very patients
whose slices are then shown, the winner's numbers and images are flattered by the choice (the
maximum of many equal models is inflated by about two standard errors). So the choice is made on
the *selection patients*, a seeded subset of the tested patients (out of fold with
``split.folds`` > 1), and the reader study draws its slices from the other tested patients only.
The metric may be any metric both directions' tables have, masked ones included; the default is
a masked one, since a whole-slice SSIM mostly measures the air around the head.

``results/reader_study/selection.csv`` (interface): ``direction, model, metric, value, patients``
(patients separated by spaces); it is also what rule reader_study reads to leave them out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mrct.evaluation.metrics import HIGHER_IS_BETTER, IMAGE_METRICS, MASKED_METRICS
from mrct.evaluation.runs import reported_slices
from mrct.io.atomic import write_text_atomic
from mrct.slices.manifest import DIRECTIONS
from mrct.slices.sweep import selection_patients

log = logging.getLogger(__name__)

SELECTION_COLUMNS = ["direction", "model", "metric", "value", "patients"]
#: Metrics a model may be chosen by: those of both directions' tables (HU metrics are MR -> CT only).
SELECTION_METRICS = [*MASKED_METRICS, *IMAGE_METRICS]


def check_selection_metric(metric: str) -> None:
    """Fail early (when the DAG is built) for a metric the tables do not have."""
    if metric not in SELECTION_METRICS:
        raise ValueError(f"reader_study.metric: expected a metric of both directions' tables, one of "
                         f"{SELECTION_METRICS}, got {metric!r}")


def select_models(slices: pd.DataFrame, models: Sequence[str], metric: str, n_patients: int, seed: int,
                  fixed: str | None = None) -> pd.DataFrame:
    """The model per direction: ``fixed`` when named (no selection patients), else the best mean
    of ``metric`` over the selection patients' test slices (full training set, replicates averaged).
    """
    if fixed is not None:
        if fixed not in models:
            raise ValueError(f"reader_study.model: {fixed!r} is not among the configured models {list(models)}")
        return pd.DataFrame([{"direction": d, "model": fixed, "metric": "fixed (reader_study.model)",
                              "value": math.nan, "patients": ""} for d in DIRECTIONS], columns=SELECTION_COLUMNS)
    check_selection_metric(metric)
    reported = reported_slices(slices)
    chosen_patients = selection_patients(reported["patient"].astype(str).unique(), n_patients, seed)
    on_selection = reported[reported["patient"].astype(str).isin(chosen_patients)]
    records = []
    for direction in DIRECTIONS:
        own = on_selection[(on_selection["direction"] == direction) & on_selection["model"].isin(models)]
        means = own.groupby("model")[metric].mean().dropna()
        if means.empty:
            raise ValueError(f"reader study selection, {direction}: no {metric} value on the selection patients "
                             f"{chosen_patients}")
        best = means.idxmax() if HIGHER_IS_BETTER[metric] else means.idxmin()
        log.info("selection, %s: %s (%s %.4g on %s)", direction, best, metric, means[best], chosen_patients)
        records.append({"direction": direction, "model": str(best), "metric": metric, "value": float(means[best]),
                        "patients": " ".join(chosen_patients)})
    return pd.DataFrame.from_records(records, columns=SELECTION_COLUMNS)


def write_selection(table: pd.DataFrame, path: str | Path) -> None:
    write_text_atomic(path, table.to_csv(index=False))


def read_selection(path: str | Path) -> tuple[dict[str, str], set[str]]:
    """direction -> chosen model, and the selection patients (never shown to the readers)."""
    table = pd.read_csv(path, dtype={"patients": str}, keep_default_na=False)
    missing = [c for c in SELECTION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    patients = {p for text in table["patients"] for p in str(text).split()}
    return dict(zip(table["direction"], table["model"], strict=True)), patients
