"""Each model's difference to its control, per direction and metric: the forest plots of the report.

The significance table (:mod:`mrct.evaluation.significance`) holds one row per direction, metric,
model and unit, about 650 patient-level rows at the study's shape: nobody reads that. A forest
plot shows the same rows as one line per model: the mean per-patient difference to the control
with its 95 % patient-level bootstrap CI, filled where the Holm-corrected Wilcoxon test is
significant, and, where the model was trained with several seeds, the seed-to-seed standard
deviation as a shaded bar around the point, so that a difference can be read against the noise
of retraining.

The control a model is tested against is read from the table: its ``control`` column where
present, else the older ``baseline`` column, else ``scratch`` (the only control before the
``control`` column existed). Rows of every panel follow one order, the effect on the ranking
metric (:data:`RANKING_METRIC`), best first, so that a row reads across the panels like a table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mrct.evaluation.metrics import HIGHER_IS_BETTER  # noqa: E402
from mrct.evaluation.tables import LABELS  # noqa: E402
from mrct.slices.manifest import DIRECTIONS  # noqa: E402

#: The metric that ranks the models: SSIM inside the head mask, where the air does not dominate.
RANKING_METRIC = "ssim_masked"
#: The control of significance tables written before they named one.
DEFAULT_CONTROL = "scratch"
#: Panels of the forest plot per direction. MR -> CT: SynthRAD2023's volume HU MAE (``mae_hu``), or
#: the per-slice HU MAE of the 8-bit PNGs (``hu_mae``) where no volume rows were tested; CT -> MR has
#: no HU, so its third panel is the 8-bit MAE inside the head mask.
FOREST_METRICS = {
    "mr2ct": [RANKING_METRIC, "psnr_masked", ("mae_hu", "hu_mae")],
    "ct2mr": [RANKING_METRIC, "psnr_masked", "mae_masked"],
}
REPLICATE_COLUMNS = ["direction", "metric", "model", "n_replicates", "mean", "sd_between_replicates"]
#: Short titles of the directions ("MR → CT"), as the report's tables are keyed.
DIRECTION_TITLES = {key: value.title.split(" (")[0] for key, value in DIRECTIONS.items()}


def read_significance(path: str | Path) -> pd.DataFrame:
    """The significance table with a ``control`` column on every row (see the module docstring)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    needed = ["direction", "metric", "model", "n", "p_value", "p_holm", "ci_low", "ci_high"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: expected significance columns {needed}, missing {missing}")
    if "control" not in table.columns:
        table["control"] = table["baseline"] if "baseline" in table.columns else DEFAULT_CONTROL
    table["control"] = table["control"].fillna(DEFAULT_CONTROL).astype(str)
    if "unit" not in table.columns:
        table["unit"] = "patient"
    if "mean_difference" not in table.columns:
        table["mean_difference"] = (table["ci_low"] + table["ci_high"]) / 2
    if "significant" not in table.columns:
        table["significant"] = table["p_holm"] < 0.05
    table["significant"] = table["significant"].astype(str).str.lower().isin(["true", "1"])
    return table


def read_replicates(path: str | Path | None) -> pd.DataFrame | None:
    """``results/tables/replicates.csv`` (seed-to-seed spread per model), or None without one."""
    if path is None:
        return None
    table = pd.read_csv(path)
    missing = [c for c in REPLICATE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: expected replicate columns {REPLICATE_COLUMNS}, missing {missing}")
    return table


def direction_metrics(significance: pd.DataFrame, direction: str) -> list[str]:
    """The forest plot's metrics for one direction that have patient-level rows in the table."""
    tested = set(significance.loc[(significance["direction"] == direction)
                                  & (significance["unit"] == "patient"), "metric"])
    chosen = []
    for entry in FOREST_METRICS.get(direction, [RANKING_METRIC]):
        options = entry if isinstance(entry, tuple) else (entry,)
        chosen += [m for m in options if m in tested][:1]
    return chosen


def forest_rows(significance: pd.DataFrame, replicates: pd.DataFrame | None, direction: str,
                metrics: Sequence[str]) -> pd.DataFrame:
    """Patient-level rows of one direction and these metrics, with the seed-to-seed SD beside them.

    ``sd_between_replicates`` and ``n_replicates`` are NaN where a model has no replicates table row.
    """
    rows = significance[(significance["direction"] == direction) & (significance["unit"] == "patient")
                        & significance["metric"].isin(list(metrics))].copy()
    rows = rows[rows["model"].astype(str) != ""]
    if replicates is not None:
        spread = replicates[replicates["direction"] == direction][
            ["metric", "model", "n_replicates", "sd_between_replicates"]]
        rows = rows.merge(spread, on=["metric", "model"], how="left")
    else:
        rows = rows.assign(n_replicates=math.nan, sd_between_replicates=math.nan)
    # A model tested against several controls gets one line per control.
    several = rows.groupby("model")["control"].transform("nunique") > 1
    rows["label"] = rows["model"].astype(str).where(~several, rows["model"].astype(str) + " vs " + rows["control"])
    return rows.reset_index(drop=True)


def oriented(values: pd.Series | np.ndarray, metric: str) -> np.ndarray:
    """Differences turned so that positive is better (MAE: lower is better)."""
    return np.asarray(values, float) * (1 if HIGHER_IS_BETTER[metric] else -1)


def effect_order(rows: pd.DataFrame, metric: str = RANKING_METRIC) -> list[str]:
    """Line labels (:func:`forest_rows`) by their difference to the control on ``metric``, best first."""
    own = rows[rows["metric"] == metric]
    effect = pd.Series(oriented(own["mean_difference"], metric), index=own["label"].astype(str))
    ordered = effect.sort_values(ascending=False, kind="stable", na_position="last")
    rest = [m for m in dict.fromkeys(rows["label"].astype(str)) if m not in ordered.index]
    return [*ordered.index, *rest]


def forest_plot(rows: pd.DataFrame, direction: str, metrics: Sequence[str], order: Sequence[str]) -> plt.Figure:
    """One panel per metric, one line per model (``order``, top to bottom): difference to the control.

    Point: mean per-patient difference; line: 95 % CI; filled point: significant after Holm;
    shaded bar: ± one seed-to-seed SD around the point (models trained with several seeds).
    """
    n = max(len(order), 1)
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(2.9 * max(len(metrics), 1) + 1.6, 0.24 * n + 1.3),
                             sharey=True, squeeze=False)
    y = {model: n - 1 - i for i, model in enumerate(order)}
    for ax, metric in zip(axes[0], metrics, strict=False):
        own = rows[rows["metric"] == metric]
        for row in own.itertuples(index=False):
            if str(row.label) not in y:
                continue
            at = y[str(row.label)]
            colour = "#1b7837" if row.significant and _better(row.mean_difference, metric) else (
                "#b2182b" if row.significant else "#555555")
            if not pd.isna(row.sd_between_replicates):
                ax.barh(at, 2 * row.sd_between_replicates, left=row.mean_difference - row.sd_between_replicates,
                        height=0.6, color=colour, alpha=0.18, linewidth=0)
            if not (pd.isna(row.ci_low) or pd.isna(row.ci_high)):
                ax.plot([row.ci_low, row.ci_high], [at, at], color=colour, linewidth=1.2)
            ax.plot([row.mean_difference], [at], "o", markersize=4, color=colour,
                    markerfacecolor=colour if row.significant else "white")
        ax.axvline(0, color="black", linewidth=0.7)
        label = LABELS.get(metric, metric)
        better = "better →" if HIGHER_IS_BETTER[metric] else "← better"
        controls = sorted(set(own["control"].astype(str)))
        ax.set_xlabel(f"model − {', '.join(controls) or 'control'}\n({better})", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", linewidth=0.3, alpha=0.5)
    axes[0][0].set_yticks(list(y.values()), list(y))
    axes[0][0].set_ylim(-0.7, n - 0.3)
    fig.suptitle(f"{DIRECTION_TITLES.get(direction, direction)}: difference to the control, 95 % CI "
                 f"(patients; filled: Holm-significant; shaded: ± seed SD)", fontsize=9)
    fig.tight_layout()
    return fig


def _better(difference: float, metric: str) -> bool:
    return bool(oriented([difference], metric)[0] > 0)


def direction_forest_plot(significance: pd.DataFrame, replicates: pd.DataFrame | None, direction: str) -> plt.Figure:
    """The forest plot of one direction from the whole significance table (and replicates, if any)."""
    metrics = direction_metrics(significance, direction)
    rows = forest_rows(significance, replicates, direction, metrics)
    if rows.empty:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        note = "; ".join(sorted(set(significance["note"].dropna().astype(str)))) if "note" in significance else ""
        ax.text(0.5, 0.5, f"{DIRECTION_TITLES.get(direction, direction)}: no model tested against a control"
                + (f"\n({note})" if note else ""), ha="center", va="center", fontsize=8, wrap=True)
        ax.set_axis_off()
        return fig
    return forest_plot(rows, direction, metrics, effect_order(rows))
