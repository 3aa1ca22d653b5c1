"""Paired comparison of each model with the from-scratch baseline, with the patient as the unit.

Slices of one patient are not independent (same anatomy, same registration, same intensity
mapping), so a per-slice test counts one patient many times: duplicating every slice halves its
p-value without adding any evidence. The unit of analysis here is the **patient**:

* **Per-patient means**: each metric is averaged over a patient's test slices (:func:`patient_means`).
  A table that is already one row per model and patient (e.g. ``results/metrics/{model}_volumes.csv``)
  passes through unchanged, so per-volume metrics are tested the same way.
* **Wilcoxon signed-rank test** of the per-patient differences model - baseline (scipy, two-sided,
  zero differences dropped: the 'wilcox' convention). Exact null distribution where possible: the
  exact test without ties or zeros (n <= 50), an exact permutation test over all 2^n sign flips with
  ties or zeros (n <= 13), the normal approximation otherwise (``method`` says which).
  ``p_min_attainable`` is the smallest p-value that test can give for these n pairs (every
  difference of one sign; 2 / 2^n for the exact test), so a reader sees at once that 5 patients can
  never give p < 0.05 (2 / 32 = 0.0625).
* **Patient-level (cluster) bootstrap** confidence interval of the mean difference: patients are
  resampled with replacement (scipy.stats.bootstrap, percentile method, seed from the config), so
  the slices of a patient stay together. With very few patients any bootstrap interval is too
  narrow; read it with the exact p-value and ``p_min_attainable``.
* **Holm** correction within each family of one direction, metric and unit (all models against the
  baseline), so that adding a metric does not change another metric's verdict.
* Effect size: the matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-) over the ranks
  of the non-zero |differences| (Kerby 2014), positive when the model's values exceed the baseline's;
  ``better`` turns that into "better than the baseline" using the metric's direction.

Per-slice tests (``unit`` = ``slice``) are kept for comparison only and labelled as such; they have
no confidence interval.

Holm is written here (six lines) so the package does not depend on statsmodels at run time; the
test checks it against statsmodels' ``multipletests(method="holm")``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import PermutationMethod, bootstrap, rankdata, wilcoxon

from mrct.evaluation.hu_metrics import VOLUME_METRICS
from mrct.evaluation.metrics import HIGHER_IS_BETTER
from mrct.evaluation.tables import direction_metrics
from mrct.slices.manifest import DIRECTIONS

UNITS = ("patient", "slice")
CI_LEVEL = 0.95
EXACT_MAX_N = 50  # scipy's own limit for the exact null distribution
PERMUTATION_MAX_N = 13  # 2^13 sign flips < scipy's 9999 resamples: the permutation test is exhaustive
COLUMNS = [
    "direction", "metric", "model", "baseline", "unit", "n", "n_patients", "n_nonzero",
    "mean_difference", "median_difference", "ci_low", "ci_high", "statistic", "method",
    "p_value", "p_min_attainable", "p_holm", "rank_biserial", "better", "significant", "note", "control",
]
SLICE_NOTE = "per slice: slices of one patient are not independent; for comparison only"


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped)."""
    d = np.asarray(differences, float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def higher_is_better(metric: str) -> bool:
    """Direction of a metric of the slice tables or of the per-patient volume tables."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"metric {metric!r}: expected one of {sorted(HIGHER_IS_BETTER)}, got an unknown metric")
    return HIGHER_IS_BETTER[metric]


def patient_means(table: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per model and patient: each metric averaged over the patient's rows (slices).

    NaN values (e.g. a slice with an empty mask) are left out of a mean; a table that already has
    one row per model and patient comes back with the same values. ``n_rows`` counts the rows.
    """
    missing = [c for c in ("model", "patient", *metrics) if c not in table.columns]
    if missing:
        raise ValueError(f"expected columns model, patient and {list(metrics)}, missing {missing}")
    grouped = table.groupby(["model", "patient"], sort=True)
    means = grouped[list(metrics)].mean()
    return means.assign(n_rows=grouped.size()).reset_index()


def wilcoxon_signed_rank(differences: np.ndarray) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired differences, exact where possible.

    Returns statistic, p_value, p_min_attainable (the same test on |differences|, i.e. all of one
    sign: 2 / 2^n for the exact test), method, n_nonzero and a note.
    """
    d = np.asarray(differences, float)
    nonzero = d[d != 0]
    result = {"statistic": math.nan, "p_value": math.nan, "p_min_attainable": math.nan, "method": "",
              "n_nonzero": int(nonzero.size), "note": ""}
    if d.size == 0:
        result["note"] = "no finite paired differences"
        return result
    if nonzero.size == 0:
        result.update(p_value=1.0, p_min_attainable=1.0, note="all paired differences are zero")
        return result
    ties_or_zeros = nonzero.size < d.size or np.unique(np.abs(nonzero)).size < nonzero.size
    if d.size <= EXACT_MAX_N and not ties_or_zeros:
        method, label = "exact", "exact"
    elif d.size <= PERMUTATION_MAX_N:
        method, label = PermutationMethod(), "exact permutation (ties or zeros)"
    else:
        method, label = "asymptotic", "normal approximation"
    test = wilcoxon(d, zero_method="wilcox", alternative="two-sided", method=method)
    extreme = wilcoxon(np.abs(d), zero_method="wilcox", alternative="two-sided", method=method)
    result.update(statistic=float(test.statistic), p_value=float(test.pvalue),
                  p_min_attainable=float(extreme.pvalue), method=label)
    return result


def bootstrap_ci(differences: np.ndarray, seed: int, n_resamples: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``differences`` (one per patient: a cluster bootstrap).

    A fresh generator seeded with ``seed`` for every interval, so an interval does not depend on
    which others were computed before it. NaN with fewer than two differences.
    """
    d = np.asarray(differences, float)
    if d.size < 2:
        return math.nan, math.nan
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])  # every resample has this mean
    result = bootstrap((d,), np.mean, n_resamples=n_resamples, confidence_level=level, method="percentile",
                       vectorized=True, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _wide(values: pd.DataFrame, key: list[str], metric: str) -> pd.DataFrame:
    """One column per model, one row per unit (``key``), sorted: the pairing of every comparison."""
    indexed = values.set_index([*key, "model"])[metric]
    if indexed.index.duplicated().any():
        first = indexed.index[indexed.index.duplicated()][0]
        raise ValueError(f"{metric}: expected one value per {key + ['model']}, got several for {first}")
    return indexed.unstack("model").sort_index()


def _differences(wide: pd.DataFrame, model: str, baseline: str) -> tuple[np.ndarray, int]:
    """Finite paired differences model - baseline, and the number of patients behind them."""
    if model not in wide.columns or baseline not in wide.columns:
        return np.empty(0), 0
    difference = wide[model] - wide[baseline]
    difference = difference[np.isfinite(difference.to_numpy(float))]
    n_patients = int(difference.index.get_level_values("patient").nunique()) if len(difference) else 0
    return difference.to_numpy(float), n_patients


def compare_models(
    values: pd.DataFrame,
    models: Sequence[str],
    direction: str,
    metrics: Sequence[str],
    unit: str = "patient",
    baseline: str = "scratch",
    alpha: float = 0.05,
    seed: int = 0,
    n_bootstrap: int = 10000,
) -> pd.DataFrame:
    """Every model against ``baseline`` on each metric of one direction, Holm-corrected per metric.

    ``unit`` = ``patient``: ``values`` holds per-slice rows (model, patient, metric columns) or rows
    that are already per patient; they are averaged per patient first, so the test, the CI and n
    count patients. ``unit`` = ``slice``: rows are paired on (patient, slice) and tested as they are.
    """
    if unit not in UNITS:
        raise ValueError(f"unit: expected one of {UNITS}, got {unit!r}")
    if unit == "patient":
        values, key = patient_means(values, metrics), ["patient"]
    else:
        key = ["patient", "slice"]
    records = []
    for metric in metrics:
        family = []
        wide = _wide(values, key, metric)
        for model in (m for m in models if m != baseline):
            differences, n_patients = _differences(wide, model, baseline)
            record = {"direction": direction, "metric": metric, "model": model, "baseline": baseline,
                      "control": baseline, "unit": unit,
                      "n": int(differences.size), "n_patients": n_patients,
                      "mean_difference": float(differences.mean()) if differences.size else math.nan,
                      "median_difference": float(np.median(differences)) if differences.size else math.nan,
                      "rank_biserial": rank_biserial(differences) if differences.size else math.nan}
            record.update(wilcoxon_signed_rank(differences))
            if unit == "patient":
                record["ci_low"], record["ci_high"] = bootstrap_ci(differences, seed, n_bootstrap)
            else:
                record.update(ci_low=math.nan, ci_high=math.nan, note="; ".join(filter(None, [SLICE_NOTE, record["note"]])))
            family.append(record)
        for record, adjusted in zip(family, holm([r["p_value"] for r in family]), strict=True):
            sign = 1 if higher_is_better(metric) else -1
            effect = record["rank_biserial"]
            record["p_holm"] = adjusted
            record["better"] = bool(sign * effect > 0) if not pd.isna(effect) else False
            record["significant"] = bool(adjusted < alpha) if not pd.isna(adjusted) else False
        records.extend(family)
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def _skip(note: str) -> pd.DataFrame:
    row = {**dict.fromkeys(COLUMNS, math.nan), "direction": "", "metric": "", "model": "", "baseline": "",
           "control": "", "unit": "", "method": "", "better": False, "significant": False, "note": note}
    return pd.DataFrame([row], columns=COLUMNS)


def significance_table(
    slices: pd.DataFrame,
    models: Sequence[str],
    baseline: str = "scratch",
    alpha: float = 0.05,
    seed: int = 0,
    n_bootstrap: int = 10000,
    units: Sequence[str] = UNITS,
    volumes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every model against ``baseline`` per direction, metric and unit, from the per-slice metrics.

    ``volumes``, the per-patient volume metrics of the synthetic CTs (HU metrics and tissue overlap,
    one row per model and test patient, see :func:`read_patient_tables`), adds MR -> CT rows whose
    unit is the patient.
    """
    if baseline not in models:
        return _skip(f"skipped: baseline {baseline!r} is not among the configured models")
    if not [m for m in models if m != baseline]:
        return _skip(f"skipped: no model besides the baseline {baseline!r} to compare")
    frames = []
    for direction in DIRECTIONS:
        own = slices[slices["direction"] == direction]
        if own.empty:
            continue
        metrics = [m for m in direction_metrics(direction) if m in own.columns]
        for unit in units:
            frames.append(compare_models(own, models, direction, metrics, unit, baseline, alpha, seed, n_bootstrap))
    if volumes is not None and not volumes.empty:
        metrics = [m for m in VOLUME_METRICS if m in volumes.columns]
        frames.append(compare_models(volumes, models, "mr2ct", metrics, "patient", baseline, alpha, seed, n_bootstrap))
    if not frames:
        return _skip("skipped: no metric rows in any direction")
    return pd.concat(frames, ignore_index=True)


def read_patient_tables(paths: Mapping[str, str | Path]) -> pd.DataFrame:
    """Per-patient tables of several models (model -> CSV) as one table with a ``model`` column.

    For tables such as ``results/metrics/{model}_volumes.csv`` (columns patient, mae_hu, ...):
    ``compare_models(read_patient_tables(...), models, "mr2ct", ["mae_hu", "psnr_hu", "ssim_hu"])``.
    """
    frames = []
    for model, path in paths.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: expected a per-patient metrics CSV, file not found")
        frame = pd.read_csv(path)
        if "patient" not in frame.columns:
            raise ValueError(f"{path}: expected a column 'patient', got {list(frame.columns)}")
        if "model" in frame.columns and set(frame["model"]) != {model}:
            raise ValueError(f"{path}: expected rows of model {model!r}, got {sorted(set(frame['model']))}")
        frames.append(frame.assign(model=model))
    if not frames:
        raise ValueError("expected at least one per-patient metrics CSV, got none")
    return pd.concat(frames, ignore_index=True)


def control_of(table: pd.DataFrame) -> str:
    """The model a significance table tests against (its ``control`` column), for titles."""
    names = [str(c) for c in table.get("control", pd.Series(dtype=str)).dropna().unique() if str(c)]
    return names[0] if names else "scratch"


def unit_summary(table: pd.DataFrame, alpha: float) -> list[str]:
    """Plain sentences: the unit of analysis, the patients behind the p-values, and what n allows."""
    lines = []
    patient_rows = table[table["unit"] == "patient"]
    for direction, rows in patient_rows.groupby("direction", sort=False):
        n_values = sorted({int(n) for n in rows["n"].dropna()})
        if not n_values:
            continue
        p_min = float(rows["p_min_attainable"].min())
        noun = "test patient" if n_values == [1] else "test patients"
        control = control_of(table)
        line = (f"{direction}: unit of analysis = patient; every p-value rests on n = "
                f"{', '.join(map(str, n_values))} {noun} (paired with {control}); the smallest p-value the "
                f"test can reach with that n is {p_min:.3g}")
        if p_min >= alpha:
            line += (f", which is not below alpha = {alpha}: with this many patients no model can be "
                     f"significantly different from {control}, whatever the data; read the confidence intervals")
        lines.append(line + ".")
    if (table["unit"] == "slice").any():
        lines.append("Rows with unit = slice treat every slice as independent, which it is not: "
                     "their p-values overstate the evidence and are shown for comparison only.")
    return lines


def to_markdown(table: pd.DataFrame, alpha: float) -> str:
    """The significance table as Markdown: the method and the unit of analysis stated above it."""
    control = control_of(table)
    intro = (
        f"### Significance against {control}\n\n"
        "Unit of analysis: the patient (per-patient means of each metric). Paired two-sided Wilcoxon "
        "signed-rank test over patients (exact where possible), Holm-corrected per direction, metric and "
        f"unit; significant when p_holm < {alpha}. p_min_attainable: the smallest p-value the test can give "
        f"for n. CI: {CI_LEVEL:.0%} patient-level (cluster) bootstrap interval of the mean difference "
        f"(model - {control}). Effect size: matched-pairs rank-biserial correlation (positive: model values "
        f"higher than {control}).\n\n"
    )
    intro += "".join(f"- {line}\n" for line in unit_summary(table, alpha)) + "\n"
    shown = table.copy()
    for column in ("mean_difference", "median_difference", "ci_low", "ci_high", "statistic", "rank_biserial"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    for column in ("p_value", "p_min_attainable", "p_holm"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    shown = shown.fillna("")
    return intro + shown.to_markdown(index=False) + "\n"
