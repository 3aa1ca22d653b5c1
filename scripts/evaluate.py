"""Entry point of rule evaluate: per-slice metrics of one model over every run of the sweep."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

from mrct.evaluation.evaluate import evaluate_runs  # noqa: E402
from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402

inputs, params = snakemake.input, snakemake.params  # noqa: F821
# One entry per run, in the order of params.runs: its manifest and its mr2ct prediction folder.
runs = [
    (read_manifest(manifest), Path(mr2ct).parent, run["fold"], run["replicate"])
    for manifest, mr2ct, run in zip(inputs.manifests, inputs.mr2ct, params.runs, strict=True)
]
slices = evaluate_runs(snakemake.wildcards.model, runs, params.hu_clip)  # noqa: F821
write_text_atomic(snakemake.output.slices, slices.to_csv(index=False))  # noqa: F821
