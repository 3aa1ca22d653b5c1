"""Entry point of rule training_table: results/tables/training.csv from every run's training.json."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.runs import training_table  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402

table = training_table(snakemake.input.summaries, snakemake.input.manifests, snakemake.params.runs)  # noqa: F821
write_text_atomic(snakemake.output.table, table.to_csv(index=False))  # noqa: F821
