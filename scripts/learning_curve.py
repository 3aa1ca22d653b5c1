"""Entry point of rule learning_curve: the learning-curve table as a figure."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

import pandas as pd  # noqa: E402

from mrct.evaluation.figures import learning_curve_plot, save_figure  # noqa: E402

figure = learning_curve_plot(pd.read_csv(snakemake.input.table), snakemake.params.metric)  # noqa: F821
save_figure(figure, snakemake.output.figure)  # noqa: F821
