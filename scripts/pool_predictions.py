"""Entry point of rule pool_predictions: one model's out-of-fold predictions in the short paths."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.inference.pool import pool_predictions  # noqa: E402

inputs, output = snakemake.input, snakemake.output  # noqa: F821
for direction in ("mr2ct", "ct2mr"):
    pool_predictions(list(getattr(inputs, direction)), getattr(output, direction))
