"""Paired significance of each model against the from-scratch baseline.

Per direction and metric, each model's per-slice values are paired with the baseline's on the
same test slice and compared with the Wilcoxon signed-rank test (scipy, two-sided; zero
differences dropped, the 'wilcox' convention). P-values are Holm-corrected within each family of
one direction and one metric (all models against the baseline), so that adding a metric does not
change another metric's verdict. Effect size: the matched-pairs rank-biserial correlation
r = (R+ - R-) / (R+ + R-) over the ranks of the non-zero |differences| (Kerby 2014), positive when
the model's values exceed the baseline's; ``better`` turns that into "better than the baseline"
using the metric's direction.

Holm is written here (six lines) so the package does not depend on statsmodels at run time; the
test checks it against statsmodels' ``multipletests(method="holm")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, wilcoxon

from mrct.evaluation.metrics import HIGHER_IS_BETTER
from mrct.evaluation.tables import direction_metrics
from mrct.slices.manifest import DIRECTIONS

COLUMNS = [
    "direction", "metric", "model", "baseline", "n_pairs", "median_difference", "statistic",
    "p_value", "p_holm", "rank_biserial", "better", "significant", "note",
]


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


def _skip(note: str, direction: str = "", metric: str = "", model: str = "", baseline: str = "") -> dict:
    return {**dict.fromkeys(COLUMNS, math.nan), "direction": direction, "metric": metric, "model": model,
            "baseline": baseline, "significant": False, "note": note}


def _test_pair(model_values: pd.Series, base_values: pd.Series) -> dict:
    pairs = pd.concat([model_values.rename("m"), base_values.rename("b")], axis=1, join="inner")
    differences = (pairs["m"] - pairs["b"]).to_numpy(float)
    differences = differences[np.isfinite(differences)]
    result = {"n_pairs": int(differences.size), "statistic": math.nan, "p_value": math.nan, "note": ""}
    if differences.size == 0:
        result["note"] = "no finite paired differences"
        return result
    result["median_difference"] = float(np.median(differences))
    result["rank_biserial"] = rank_biserial(differences)
    if not np.any(differences != 0):
        result.update(p_value=1.0, note="all paired differences are zero")
        return result
    test = wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    result.update(statistic=float(test.statistic), p_value=float(test.pvalue))
    return result


def significance_table(
    slices: pd.DataFrame, models: Sequence[str], baseline: str = "scratch", alpha: float = 0.05
) -> pd.DataFrame:
    """Wilcoxon signed-rank of every model against ``baseline``, per direction and metric."""
    if baseline not in models:
        return pd.DataFrame([_skip(f"skipped: baseline {baseline!r} is not among the configured models")], columns=COLUMNS)
    others = [m for m in models if m != baseline]
    if not others:
        return pd.DataFrame([_skip(f"skipped: no model besides the baseline {baseline!r} to compare")], columns=COLUMNS)
    records = []
    for direction in DIRECTIONS:
        rows = slices[slices["direction"] == direction].set_index(["patient", "slice"])
        for metric in direction_metrics(direction):
            base_values = rows.loc[rows["model"] == baseline, metric]
            family = []
            for model in others:
                record = {"direction": direction, "metric": metric, "model": model, "baseline": baseline}
                record.update(_test_pair(rows.loc[rows["model"] == model, metric], base_values))
                family.append(record)
            for record, adjusted in zip(family, holm([r["p_value"] for r in family]), strict=True):
                record["p_holm"] = adjusted
                effect = record.get("rank_biserial", math.nan)
                sign = 1 if HIGHER_IS_BETTER[metric] else -1
                record["better"] = bool(sign * effect > 0) if not pd.isna(effect) else False
                record["significant"] = bool(adjusted < alpha) if not pd.isna(adjusted) else False
            records.extend(family)
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def to_markdown(table: pd.DataFrame, alpha: float) -> str:
    """The significance table as Markdown, with the method stated above it."""
    intro = (
        "### Significance against the from-scratch baseline\n\n"
        "Paired two-sided Wilcoxon signed-rank test per test slice, Holm-corrected per direction and "
        f"metric; significant when p_holm < {alpha}. Effect size: matched-pairs rank-biserial "
        "correlation (positive: model values higher than baseline).\n\n"
    )
    shown = table.copy()
    for column in ("median_difference", "statistic", "rank_biserial"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    for column in ("p_value", "p_holm"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    shown = shown.fillna("")
    return intro + shown.to_markdown(index=False) + "\n"
