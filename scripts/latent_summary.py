"""Entry point of rule latent_summary: one grid of every model's embeddings, one separability table."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.figures import save_figure  # noqa: E402
from mrct.evaluation.latent import plot_grid  # noqa: E402
from mrct.evaluation.tables import read_metric_tables  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402

models = list(snakemake.params.models)  # noqa: F821
save_figure(plot_grid(dict(zip(models, snakemake.input.features, strict=True))), snakemake.output.grid)  # noqa: F821
table = read_metric_tables(snakemake.input.separability)  # noqa: F821
columns = ["model", *[c for c in table.columns if c != "model"]]
write_text_atomic(snakemake.output.separability, table[columns].to_csv(index=False))  # noqa: F821
