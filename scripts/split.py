"""Entry point of rule split."""

from mrct.io.joblog import setup_logging
from mrct.slices.split import build_manifest, write_manifest

log = setup_logging(snakemake.log[0])
manifest = build_manifest(snakemake.input.tables, snakemake.params.train_fraction, snakemake.params.seed)
counts = manifest.groupby("split")["patient"].nunique().to_dict()
log.info("split by patient: %s", counts)
write_manifest(manifest, snakemake.output.manifest)
