"""File-level preprocessing steps, one per rule: read, compute, write atomically.

Kept apart from the algorithms (bias, register, masks) so those stay pure functions on images,
and so the steps can be run and tested without Snakemake.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from mrct.io.atomic import atomic_path
from mrct.io.volumes import read_volume, write_volume
from mrct.preprocess.bias import correct_bias
from mrct.preprocess.masks import body_mask, ct_head_mask, mr_head_mask
from mrct.preprocess.qa import bias_figure, registration_figure
from mrct.preprocess.register import register_or_keep

log = logging.getLogger(__name__)


def bias_correct_files(mr_path: str, out: dict[str, str], method: str, settings: dict[str, Any], patient: str) -> None:
    mr = read_volume(mr_path, "mr")
    mask = mr_head_mask(mr)
    corrected, field = correct_bias(mr, mask, method, settings)
    write_volume(corrected, out["mr"])
    write_volume(field, out["field"])
    write_volume(mask, out["mask"])
    bias_figure(mr, corrected, field, mask, f"{patient}: bias correction ({method})", out["qa"])


def register_files(mr_path: str, mr_mask_path: str, ct_path: str, out: dict[str, str],
                   settings: dict[str, Any], head_threshold_hu: float, seed: int, patient: str,
                   evaluation_mask_path: str | None = None) -> None:
    """Register (or keep an MR already aligned on the CT grid: register_or_keep); write MR and CT
    on the CT grid, the head mask, the transform, the QA figure, and (when ``out`` names ``body_mask``) the body mask of the HU metrics: ``evaluation_mask_path``
    (SynthRAD2023's mask.nii.gz) on the CT grid when given, else the CT's filled outline."""
    ct = read_volume(ct_path, "ct")
    mr = sitk.ReadImage(mr_path, sitk.sitkFloat32)
    mr_mask = sitk.ReadImage(mr_mask_path, sitk.sitkUInt8)
    ct_mask = ct_head_mask(ct, head_threshold_hu)
    with tempfile.TemporaryDirectory() as workdir:
        transform, mr_on_ct, kept = register_or_keep(ct, mr, ct_mask, mr_mask, settings, seed, Path(workdir))
    write_volume(mr_on_ct, out["mr"])
    write_volume(ct, out["ct"])
    write_volume(ct_mask, out["mask"])
    if "body_mask" in out:
        # Without the challenge's mask the body mask is the CT head mask made above (same definition).
        body = body_mask(ct, evaluation_mask=sitk.ReadImage(str(evaluation_mask_path))) if evaluation_mask_path else ct_mask
        write_volume(body, out["body_mask"])
    with atomic_path(out["transform"]) as tmp:
        sitk.WriteTransform(transform, str(tmp))
    title = f"{patient}: MR registered to CT ({settings['backend']})"
    if kept:
        title = f"{patient}: MR kept as given (aligned on the CT grid)"
    registration_figure(ct, mr_on_ct, ct_mask, title, out["qa"])
