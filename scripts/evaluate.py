"""Entry point of rule evaluate: per-slice metrics of one model."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

from mrct.evaluation.evaluate import evaluate_model  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402

slices = evaluate_model(
    snakemake.wildcards.model,  # noqa: F821
    read_manifest(snakemake.input.manifest),  # noqa: F821
    Path(snakemake.input.mr2ct).parent,  # noqa: F821
    snakemake.params.hu_clip,  # noqa: F821
)
write_text_atomic(snakemake.output.slices, slices.to_csv(index=False))  # noqa: F821
