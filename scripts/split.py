"""Entry point of rule split."""

from mrct.io.joblog import setup_logging
from mrct.preprocess.registration_qa import (
    excluded_patients,
    read_registration_qa,
    require_each_group,
)
from mrct.slices.split import assign_split, build_manifest, check_reader_study_slices, patient_folds, write_manifest

log = setup_logging(snakemake.log[0])
params = snakemake.params
qa = read_registration_qa(snakemake.input.registration_qa)
excluded = excluded_patients(qa, params.keep_flagged)
for patient, reason in zip(qa["patient"][qa["flagged"]], qa["reason"][qa["flagged"]], strict=True):
    action = "left out of training and evaluation" if patient in excluded else "kept (keep_flagged)"
    log.warning("%s: registration flagged (%s), %s", patient, reason, action)
# Stop with every patient's figures and the config lines to go on, before a bare "no patient left".
if params.folds == 1:
    groups = assign_split(qa["patient"], params.train_fraction, params.seed)
else:
    folds = patient_folds(qa["patient"], params.folds, params.train_fraction, params.seed)
    groups = {patient: f"fold {fold}" for patient, fold in folds.items()}
require_each_group(qa, excluded, groups)
manifest = build_manifest(snakemake.input.tables, params.train_fraction, params.seed, excluded, params.folds)
counts = manifest.groupby("split")["patient"].nunique().to_dict()
log.info("split by patient: %s; patients per fold: %s", counts,
         manifest.groupby("fold")["patient"].nunique().to_dict())
# Before any training job: the reader study's slices, counted exactly.
check_reader_study_slices(manifest, params.images_per_modality, params.selection_patients, params.seed)
write_manifest(manifest, snakemake.output.manifest)
