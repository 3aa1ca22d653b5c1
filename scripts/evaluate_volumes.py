"""Entry point of rule evaluate_volumes: HU metrics and tissue overlap of one model's test sCT volumes."""

from mrct.io.joblog import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake

from pathlib import Path  # noqa: E402

from mrct.io.atomic import write_text_atomic  # noqa: E402
from mrct.slices.manifest import read_manifest  # noqa: E402
from mrct.evaluation.volumes import check_test_patients, evaluate_volumes  # noqa: E402

inputs = snakemake.input  # noqa: F821
# results/translations/{model}/{patient}/sct.nii.gz: the patient is the folder.
patients = [Path(p).parent.name for p in inputs.sct]
check_test_patients(patients, read_manifest(inputs.manifest))
volumes = evaluate_volumes(
    snakemake.wildcards.model,  # noqa: F821
    patients,
    list(inputs.sct),
    list(inputs.ct),
    list(inputs.body_mask),
    snakemake.params.hu_clip,  # noqa: F821
    snakemake.params.tissue_hu,  # noqa: F821
)
write_text_atomic(snakemake.output.volumes, volumes.to_csv(index=False))  # noqa: F821
