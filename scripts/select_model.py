"""Entry point of rule select_model: the reader study's model, chosen on the selection patients."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.tables import read_metric_tables  # noqa: E402
from mrct.reader_study.selection import select_models, write_selection  # noqa: E402

params = snakemake.params  # noqa: F821
table = select_models(
    read_metric_tables(snakemake.input.slices),  # noqa: F821
    list(params.models),
    params.metric,
    params.n_patients,
    params.seed,
    fixed=params.model,
)
write_selection(table, snakemake.output.selection)  # noqa: F821
