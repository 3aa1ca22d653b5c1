"""Entry point of rule run_manifest: the manifest one run of the sweep trains and predicts with."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from mrct.slices.manifest import read_manifest  # noqa: E402
from mrct.slices.split import run_manifest, write_manifest  # noqa: E402
from mrct.slices.sweep import Run  # noqa: E402

params = snakemake.params  # noqa: F821
run = Run(**params.run)
manifest = run_manifest(read_manifest(snakemake.input.manifest), run, params.seed)  # noqa: F821
log.info("%s: %s", run, manifest.groupby("split")["patient"].nunique().to_dict())
write_manifest(manifest, snakemake.output.manifest)  # noqa: F821
