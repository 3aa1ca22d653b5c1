"""Entry point of rule tables: AVG/STD tables per direction, significance, replicates, learning curve."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.evaluation.runs import learning_curve, replicate_table, reported_slices  # noqa: E402
from mrct.evaluation.significance import read_patient_tables, significance_table, to_markdown  # noqa: E402
from mrct.evaluation.tables import read_metric_tables, summarize, write_direction_tables  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.slices.manifest import DIRECTIONS  # noqa: E402

out = snakemake.output  # noqa: F821
models = list(snakemake.params.models)  # noqa: F821
runs = read_metric_tables(snakemake.input.slices)  # noqa: F821
# Full training set, each slice averaged over the replicates: every tested patient once, out of fold.
slices = reported_slices(runs)
for direction in DIRECTIONS:
    table = summarize(slices, models, direction)
    write_direction_tables(table, direction, *(getattr(out, f"{direction}_{ext}") for ext in ("csv", "md", "tex")))
params = snakemake.params  # noqa: F821
volumes = read_patient_tables(dict(zip(models, snakemake.input.volumes, strict=True)))  # noqa: F821
significance = significance_table(slices, models, baseline=params.control, alpha=params.alpha, seed=params.seed,
                                  n_bootstrap=params.n_bootstrap, volumes=volumes)
write_text_atomic(out.significance_csv, significance.to_csv(index=False))
write_text_atomic(out.significance_md, to_markdown(significance, params.alpha))
write_text_atomic(out.replicates, replicate_table(runs, models).to_csv(index=False))
write_text_atomic(out.learning_curve, learning_curve(runs, models).to_csv(index=False))
