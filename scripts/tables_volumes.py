"""Entry point of rule tables_volumes: mean and STD over test patients of the volume HU metrics."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.tables import read_metric_tables  # noqa: E402
from mrct.evaluation.volumes import summarize_volumes, write_volume_tables  # noqa: E402

volumes = read_metric_tables(snakemake.input.volumes)  # noqa: F821
table = summarize_volumes(volumes, list(snakemake.params.models))  # noqa: F821
write_volume_tables(table, snakemake.output.csv, snakemake.output.md)  # noqa: F821
