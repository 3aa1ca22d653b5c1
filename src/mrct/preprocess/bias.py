"""MR bias-field correction inside the head: N4 (SimpleITK) or N3 (ANTsPy, as in the study).

Both return the corrected image and the estimated multiplicative field at full resolution,
so the QA figure and the tests can compare the field with the truth.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import ants
import numpy as np
import SimpleITK as sitk

from mrct.preprocess.ants_bridge import to_ants, to_sitk
from mrct.preprocess.threads import BIAS_CORRECTION_THREADS, itk_threads

log = logging.getLogger(__name__)
METHODS = ("n4", "n3", "none")


def _positive(image: sitk.Image) -> sitk.Image:
    """N3/N4 fit a log field: intensities must be positive; scanner noise can hit zero."""
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    floor = max(float(np.percentile(array[array > 0], 1)) if np.any(array > 0) else 1.0, 1e-3) * 1e-2
    out = sitk.GetImageFromArray(np.maximum(array, floor))
    out.CopyInformation(image)
    return out


def _control_points(image: sitk.Image, spline_distance_mm: float, n_levels: int) -> list[int]:
    """Initial B-spline mesh such that the finest level has about ``spline_distance_mm`` spacing.

    N4 doubles the mesh resolution at every fitting level; a spacing given for the first level
    would end several times finer and let the "field" follow anatomy (brain vs scalp and skull).
    Setting it in mm keeps the field's smoothness independent of voxel size and field of view
    (at least spline order + 1 = 4 points per axis).
    """
    coarsest = spline_distance_mm * 2 ** (n_levels - 1)
    extent = [size * spacing for size, spacing in zip(image.GetSize(), image.GetSpacing(), strict=True)]
    return [max(4, math.ceil(e / coarsest) + 3) for e in extent]


def n4_correct(mr: sitk.Image, mask: sitk.Image, settings: dict[str, Any]) -> tuple[sitk.Image, sitk.Image]:
    image = _positive(mr)
    shrink = settings["shrink_factor"]
    small = sitk.Shrink(image, [shrink] * 3)
    small_mask = sitk.Cast(sitk.Shrink(mask, [shrink] * 3) > 0, sitk.sitkUInt8)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(settings["iterations"]))
    n4.SetConvergenceThreshold(settings["convergence_threshold"])
    n4.SetNumberOfControlPoints(
        _control_points(image, settings["spline_distance_mm"], len(settings["iterations"]))
    )
    with itk_threads(BIAS_CORRECTION_THREADS):
        n4.Execute(small, small_mask)
    # The fitted B-spline is defined in physical space: evaluate it on the full-resolution grid.
    log_field = n4.GetLogBiasFieldAsImage(image)
    field = sitk.Exp(log_field)
    return sitk.Cast(image / field, sitk.sitkFloat32), sitk.Cast(field, sitk.sitkFloat32)


def n3_correct(mr: sitk.Image, mask: sitk.Image, settings: dict[str, Any]) -> tuple[sitk.Image, sitk.Image]:
    image = _positive(mr)
    levels = settings["fitting_levels"]
    # ANTs takes the spacing of the coarsest mesh; see _control_points for why we give the finest.
    result = ants.n3_bias_field_correction2(
        to_ants(image),
        mask=to_ants(sitk.Cast(mask, sitk.sitkFloat32)),
        shrink_factor=settings["shrink_factor"],
        convergence={"iters": settings["iterations"], "tol": settings["convergence_threshold"]},
        spline_param=settings["spline_distance_mm"] * 2 ** (levels - 1),
        number_of_fitting_levels=levels,
        return_bias_field=True,
    )
    field_image = to_sitk(result, image)
    return sitk.Cast(image / field_image, sitk.sitkFloat32), field_image


def correct_bias(mr: sitk.Image, mask: sitk.Image, method: str, settings: dict[str, Any]) -> tuple[sitk.Image, sitk.Image]:
    """Return (corrected MR, multiplicative field); ``none`` returns the input and a unit field."""
    if method not in METHODS:
        raise ValueError(f"bias_correction must be one of {METHODS}, got {method!r}")
    if method == "none":
        ones = sitk.Image(mr.GetSize(), sitk.sitkFloat32) + 1.0
        ones.CopyInformation(mr)
        return sitk.Cast(mr, sitk.sitkFloat32), ones
    log.info("bias correction %s with %s", method, settings)
    correct = n4_correct if method == "n4" else n3_correct
    return correct(mr, mask, settings)
