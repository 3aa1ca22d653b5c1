"""Entry point of rule split."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.registration_qa import excluded_patients, read_registration_qa
from mrct.slices.split import build_manifest, write_manifest

log = setup_logging(snakemake.log[0])
excluded = excluded_patients(read_registration_qa(snakemake.input.registration_qa), snakemake.params.keep_flagged)
for patient, reason in excluded.items():
    log.warning("%s left out of training and evaluation: registration flagged (%s)", patient, reason)
manifest = build_manifest(snakemake.input.tables, snakemake.params.train_fraction, snakemake.params.seed, excluded)
counts = manifest.groupby("split")["patient"].nunique().to_dict()
log.info("split by patient: %s", counts)
write_manifest(manifest, snakemake.output.manifest)
