"""Entry point of rule figures: translation grids, metric distributions, training losses."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from mrct.evaluation.runs import reported_slices  # noqa: E402
from mrct.evaluation.figures import (  # noqa: E402
    figure_models,
    loss_curves,
    metric_distributions,
    save_figure,
    translation_grid,
)
from mrct.evaluation.tables import read_metric_tables  # noqa: E402
from mrct.slices.manifest import DIRECTIONS, read_manifest  # noqa: E402

models = list(snakemake.params.models)  # noqa: F821
out = snakemake.output  # noqa: F821
manifest = read_manifest(snakemake.input.manifest)  # noqa: F821
# get_prediction_dirs lists the (out-of-fold) {model}/{direction} for each direction, model by model, in the configured order.
roots = {model: Path(snakemake.input.predictions[len(DIRECTIONS) * i]).parent for i, model in enumerate(models)}  # noqa: F821
# Full training set, replicates averaged: every tested slice once (mrct.evaluation.runs).
slices = reported_slices(read_metric_tables(snakemake.input.slices))  # noqa: F821
params = snakemake.params  # noqa: F821
for direction in DIRECTIONS:
    shown = figure_models(slices, models, direction, params.control, params.n_figure_models)
    figure = translation_grid(manifest, {m: roots[m] for m in shown}, direction, params.n_figure_slices, len(models))
    save_figure(figure, getattr(out, f"translation_{direction}"))
save_figure(metric_distributions(slices, models), out.distributions)
logs = {model: pd.read_csv(path) for model, path in zip(models, snakemake.input.train_logs, strict=True)}  # noqa: F821
save_figure(loss_curves(logs), out.losses)
