"""Gathering the runs of a sweep: out-of-fold rows, replicate means, seed spread, learning curve.

``results/metrics/{model}.csv`` holds each test slice once per run that tested it, with the
run's ``fold``, ``replicate`` and ``n_train_patients`` (:mod:`mrct.slices.sweep`). Nothing here
re-derives which patient was tested where: the rows say it. The tables and the significance
tests read :func:`reported_slices`: the runs on the full training set, each slice's metrics
averaged over the replicates, so that every tested patient counts once (pooled out of fold).
"""

from __future__ import annotations

import math
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.evaluation.tables import direction_metrics

#: Columns that say which run a per-slice row comes from.
RUN_COLUMNS = ["fold", "replicate", "n_train_patients"]
SLICE_ID = ["model", "patient", "slice", "direction"]
REPLICATE_COLUMNS = ["direction", "metric", "model", "n_replicates", "mean", "sd_between_replicates"]
LEARNING_CURVE_COLUMNS = ["direction", "metric", "model", "n_train_patients", "mean", "sd"]
TRAINING_COLUMNS = ["model", "fold", "replicate", "n_train_patients", "seed", "strategy", "lr",
                    "trainable_parameters", "total_parameters", "epochs", "seconds"]


def with_run_columns(slices: pd.DataFrame) -> pd.DataFrame:
    """``slices`` with the run columns; a table without them is one run (fold 0, replicate 0)."""
    slices = slices.copy()
    for column, default in (("fold", 0), ("replicate", 0), ("n_train_patients", -1)):
        if column not in slices.columns:
            slices[column] = default
    return slices


def full_training_rows(slices: pd.DataFrame) -> pd.DataFrame:
    """Rows of the runs on the full training set: the largest training set of each model and fold
    (``split.train_sizes`` must lie below it)."""
    slices = with_run_columns(slices)
    largest = slices.groupby(["model", "fold"])["n_train_patients"].transform("max")
    return slices[slices["n_train_patients"] == largest].reset_index(drop=True)


def _metric_columns(slices: pd.DataFrame) -> list[str]:
    skip = set(SLICE_ID) | set(RUN_COLUMNS)
    return [c for c in slices.columns if c not in skip and pd.api.types.is_numeric_dtype(slices[c])]


def reported_slices(slices: pd.DataFrame) -> pd.DataFrame:
    """One row per model, test slice and direction: the full-training-set runs' metrics averaged
    over replicates (``n_replicates`` counts them). What every table and test reports."""
    full = full_training_rows(slices)
    metrics = _metric_columns(full)
    grouped = full.groupby(SLICE_ID, sort=False)
    means = grouped[metrics].mean()
    firsts = grouped[["fold", "n_train_patients"]].first()
    return pd.concat([means, firsts], axis=1).assign(n_replicates=grouped.size()).reset_index()


def replicate_table(slices: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Per direction, metric and model: the mean over replicates of each replicate's mean over the
    tested slices (full training set), and the standard deviation between those replicate means
    (ddof 1; NaN for one replicate): how much a second seed of the same model moves the number."""
    full = full_training_rows(slices)
    records = []
    for direction in dict.fromkeys(full["direction"]):
        own = full[full["direction"] == direction]
        metrics = [m for m in direction_metrics(direction) if m in own.columns]
        for model in models:
            rows = own[own["model"] == model]
            if rows.empty:
                continue
            per_replicate = rows.groupby("replicate")[metrics].mean()
            for metric in metrics:
                values = per_replicate[metric].dropna()
                records.append({"direction": direction, "metric": metric, "model": model,
                                "n_replicates": int(len(values)),
                                "mean": float(values.mean()) if len(values) else math.nan,
                                "sd_between_replicates": float(values.std(ddof=1)) if len(values) > 1 else math.nan})
    return pd.DataFrame.from_records(records, columns=REPLICATE_COLUMNS)


def learning_curve(slices: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Per direction, metric, model and training-set size: the mean over the tested patients of
    each patient's mean (over its slices and the replicates), and the SD between patients."""
    slices = with_run_columns(slices)
    records = []
    for direction in dict.fromkeys(slices["direction"]):
        own = slices[slices["direction"] == direction]
        metrics = [m for m in direction_metrics(direction) if m in own.columns]
        for model in models:
            for n_train, rows in own[own["model"] == model].groupby("n_train_patients", sort=True):
                patients = rows.groupby("patient")[metrics].mean()
                for metric in metrics:
                    values = patients[metric].dropna()
                    records.append({"direction": direction, "metric": metric, "model": model,
                                    "n_train_patients": int(n_train),
                                    "mean": float(values.mean()) if len(values) else math.nan,
                                    "sd": float(values.std(ddof=1)) if len(values) > 1 else math.nan})
    return pd.DataFrame.from_records(records, columns=LEARNING_CURVE_COLUMNS)


def training_table(summaries: Sequence[str | Path], manifests: Sequence[str | Path],
                   runs: Sequence[Mapping[str, int]]) -> pd.DataFrame:
    """``results/tables/training.csv``: each run's ``training.json`` (written by its training job)
    beside its fold, replicate and training patients (from the run's manifest), one row per model
    and run."""
    if not len(summaries) == len(manifests) == len(runs):
        raise ValueError(f"expected one manifest and run per training summary, got {len(manifests)} and "
                         f"{len(runs)} for {len(summaries)}")
    records = []
    for path, manifest, run in zip(summaries, manifests, runs, strict=True):
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
        table = pd.read_csv(manifest, usecols=["patient", "split"])
        n_train = int(table.loc[table["split"] == "train", "patient"].nunique())
        records.append({**summary, "fold": int(run["fold"]), "replicate": int(run["replicate"]),
                        "n_train_patients": n_train})
    return pd.DataFrame.from_records(records, columns=TRAINING_COLUMNS)

