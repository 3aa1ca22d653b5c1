"""Entry point of rule split."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.registration_qa import (
    excluded_patients,
    read_registration_qa,
    require_each_group,
)
from mrct.slices.split import assign_split, build_manifest, write_manifest

log = setup_logging(snakemake.log[0])
qa = read_registration_qa(snakemake.input.registration_qa)
excluded = excluded_patients(qa, snakemake.params.keep_flagged)
for patient, reason in zip(qa["patient"][qa["flagged"]], qa["reason"][qa["flagged"]], strict=True):
    action = "left out of training and evaluation" if patient in excluded else "kept (keep_flagged)"
    log.warning("%s: registration flagged (%s), %s", patient, reason, action)
# Stop with every patient's figures and the config lines to go on, before a bare "no patient left".
sides = assign_split(qa["patient"], snakemake.params.train_fraction, snakemake.params.seed)
require_each_group(qa, excluded, sides)
manifest = build_manifest(snakemake.input.tables, snakemake.params.train_fraction, snakemake.params.seed, excluded)
counts = manifest.groupby("split")["patient"].nunique().to_dict()
log.info("split by patient: %s", counts)
write_manifest(manifest, snakemake.output.manifest)
