"""Entry point of rule extract_slices."""

from pathlib import Path

import SimpleITK as sitk

from mrct.io.atomic import atomic_path
from mrct.io.joblog import setup_logging
from mrct.slices.extract import extract_patient_slices

log = setup_logging(snakemake.log[0])
table = extract_patient_slices(
    sitk.ReadImage(snakemake.input.mr, sitk.sitkFloat32),
    sitk.ReadImage(snakemake.input.ct, sitk.sitkFloat32),
    sitk.ReadImage(snakemake.input.mask, sitk.sitkUInt8),
    snakemake.wildcards.patient,
    dict(snakemake.params.settings),
    Path(snakemake.output.pngs),
    snakemake.params.synthetic,
)
log.info("%d slices of %s", len(table), snakemake.wildcards.patient)
with atomic_path(snakemake.output.table) as tmp:
    table.to_csv(tmp, index=False)
