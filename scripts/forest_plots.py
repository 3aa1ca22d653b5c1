"""Entry point of rule forest_plots: each model's difference to its control, one figure per direction."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.figures import save_figure  # noqa: E402
from mrct.evaluation.forest import direction_forest_plot, read_replicates, read_significance  # noqa: E402
from mrct.slices.manifest import DIRECTIONS  # noqa: E402

inputs = snakemake.input  # noqa: F821
significance = read_significance(inputs.significance)
given = inputs.get("replicates")  # the table's path, or nothing where no rule writes it
replicates = read_replicates(given if isinstance(given, str) else (given[0] if given else None))
for direction in DIRECTIONS:
    save_figure(direction_forest_plot(significance, replicates, direction), getattr(snakemake.output, direction))  # noqa: F821
