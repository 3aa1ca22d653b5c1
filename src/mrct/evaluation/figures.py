"""Figures of the evaluation: translation grids (study Figures 5/6), metric distributions, losses.

All figures are written with the non-interactive Agg backend and atomically (temp file, rename).
Slices are shown as the 8-bit metrics see them: rendered over their stored window (``as_uint8``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from mrct.evaluation.evaluate import prediction_path  # noqa: E402
from mrct.evaluation.forest import RANKING_METRIC  # noqa: E402
from mrct.evaluation.metrics import HIGHER_IS_BETTER  # noqa: E402
from mrct.io.atomic import atomic_path  # noqa: E402
from mrct.io.png import read_gray_png  # noqa: E402
from mrct.slices.geometry import as_uint8  # noqa: E402
from mrct.slices.manifest import DIRECTIONS, evenly_spaced, split_rows  # noqa: E402

log = logging.getLogger(__name__)

#: The metrics that rank the models: inside the head mask, so the air does not dominate them.
DISTRIBUTION_METRICS = ["psnr_masked", "ssim_masked", "uqi_masked", "vif_masked"]


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def figure_slices(manifest: pd.DataFrame, n_slices: int) -> pd.DataFrame:
    """A few fixed test slices, evenly spaced over the (sorted) test split: same ones every run."""
    rows = split_rows(manifest, "test")
    return rows.iloc[evenly_spaced(len(rows), n_slices)].reset_index(drop=True)


def figure_models(slices: pd.DataFrame, models: Sequence[str], direction: str, control: str, n_best: int,
                  metric: str = RANKING_METRIC) -> list[str]:
    """The models a translation grid shows: the control, then the ``n_best`` others by ``metric``.

    ``metric`` is averaged over the direction's test slices, as the metric tables do, so the grid
    shows the top of the report's ranking. A grid of every model grows by a column per model (19
    models: a figure of about 4400 px by 1700 px per direction); the control and the best few
    answer what the grid is for. A control that is not configured is left out.
    """
    own = slices[(slices["direction"] == direction) & slices["model"].isin(list(models))]
    return control_and_best(own.groupby("model")[metric].mean().reindex(list(models)), control, n_best, metric)


def control_and_best(means: pd.Series, control: str | None, n_best: int, metric: str = RANKING_METRIC) -> list[str]:
    """The control (when it is one of ``means``' models), then the ``n_best`` others by their mean of
    ``metric`` (``means``: model -> mean; ties keep its order, NaN last). Shared by the translation
    figures and the report's per-model latent plots, so that both show the same models."""
    others = means.drop(control, errors="ignore") if control is not None else means
    best = others.sort_values(ascending=not HIGHER_IS_BETTER[metric], kind="stable", na_position="last").index[:n_best]
    return ([control] if control in means.index else []) + list(best)


def translation_grid(
    manifest: pd.DataFrame, prediction_roots: Mapping[str, str | Path], direction: str, n_slices: int,
    n_models: int | None = None,
) -> plt.Figure:
    """Per chosen slice: input, ground truth, each model's output; below, each model's |error|.

    ``n_models``: how many models were configured, when ``prediction_roots`` holds only some of them
    (:func:`figure_models`); the title then says so.
    """
    rows = figure_slices(manifest, n_slices)
    models = list(prediction_roots)
    n_cols = 2 + len(models)
    fig, axes = plt.subplots(2 * len(rows), n_cols, figsize=(1.9 * n_cols, 3.8 * len(rows)), squeeze=False)
    for i, row in enumerate(rows.itertuples(index=False)):
        source = as_uint8(read_gray_png(getattr(row, DIRECTIONS[direction].source_column)))
        target_png = getattr(row, DIRECTIONS[direction].target_column)
        target = as_uint8(read_gray_png(target_png))
        top, bottom = axes[2 * i], axes[2 * i + 1]
        top[0].imshow(source, cmap="gray", vmin=0, vmax=255)
        top[0].set_title("input" if i == 0 else "", fontsize=8)
        top[1].imshow(target, cmap="gray", vmin=0, vmax=255)
        top[1].set_title("ground truth" if i == 0 else "", fontsize=8)
        top[0].set_ylabel(f"{row.patient} z{int(row.slice)}", fontsize=8)
        bottom[0].set_ylabel("|error|", fontsize=8)
        for j, model in enumerate(models):
            pred = as_uint8(read_gray_png(prediction_path(prediction_roots[model], direction, target_png)))
            top[2 + j].imshow(pred, cmap="gray", vmin=0, vmax=255)
            top[2 + j].set_title(model if i == 0 else "", fontsize=8)
            error = np.abs(pred.astype(np.int16) - target.astype(np.int16))
            bottom[2 + j].imshow(error, cmap="magma", vmin=0, vmax=128)
        for ax in (*top, *bottom):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    shown = "" if n_models is None or n_models <= len(models) else (
        f"; {len(models)} of {n_models} models: the control and the best by masked SSIM")
    fig.suptitle(f"{direction.replace('2', ' → ').upper()} translations (error maps: 0-128 gray levels{shown})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def metric_distributions(slices: pd.DataFrame, models: Sequence[str]) -> plt.Figure:
    """Box plots of the per-slice masked PSNR, SSIM, UQI and VIF, per model and direction.

    A metric with no finite value (VIF is undefined below 41 px, say) gets a note instead of an
    empty box plot, which seaborn cannot draw.
    """
    fig, axes = plt.subplots(2, 2, figsize=(max(8, 1.1 * len(models) + 4), 7.5), squeeze=False)
    data = slices.replace([np.inf, -np.inf], np.nan)
    for ax, metric in zip(axes.flat, DISTRIBUTION_METRICS, strict=True):
        name = metric.removesuffix("_masked").upper() + " inside the head mask"
        ax.set_title(name, fontsize=10)
        if not data[metric].notna().any():
            ax.text(0.5, 0.5, f"{name}: not defined for these slices", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9)
            ax.set_axis_off()
            continue
        sns.boxplot(data=data, x="model", y=metric, hue="direction", order=list(models),
                    hue_order=list(DIRECTIONS), ax=ax, fliersize=2)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    return fig


def loss_curves(train_logs: Mapping[str, pd.DataFrame]) -> plt.Figure:
    """Training losses per epoch (every ``loss_*`` column of train_log.csv), one panel per model."""
    n = len(train_logs)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.3 * rows), squeeze=False)
    for ax, (model, table) in zip(axes.flat, train_logs.items()):
        losses = [c for c in table.columns if c.startswith("loss_")]
        if "epoch" not in table.columns or not losses:
            raise ValueError(f"train log of {model}: expected columns epoch and loss_*, got {list(table.columns)}")
        for column in losses:
            ax.plot(table["epoch"], table[column], marker=".", label=column.removeprefix("loss_"))
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7, ncol=2)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def learning_curve_plot(curve: pd.DataFrame, metric: str = "ssim_masked") -> plt.Figure:
    """``results/tables/learning_curve.csv`` as one panel per direction: ``metric`` (mean ± SD
    over the tested patients) against the training patients, one line per model."""
    directions = [d for d in DIRECTIONS if d in set(curve["direction"])]
    fig, axes = plt.subplots(1, max(len(directions), 1), figsize=(5 * max(len(directions), 1), 3.6), squeeze=False)
    for ax, direction in zip(axes[0], directions, strict=False):
        own = curve[(curve["direction"] == direction) & (curve["metric"] == metric)]
        for model, rows in own.groupby("model", sort=False):
            rows = rows.sort_values("n_train_patients")
            ax.errorbar(rows["n_train_patients"], rows["mean"], yerr=rows["sd"].fillna(0), marker="o", capsize=3,
                        label=model)
        ax.set_title(DIRECTIONS[direction].title, fontsize=9)
        ax.set_xlabel("training patients")
        ax.set_ylabel(f"{metric} (mean ± SD over patients)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
