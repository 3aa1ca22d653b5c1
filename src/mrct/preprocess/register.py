"""Rigid MR -> CT registration by Mattes mutual information, and resampling onto the CT grid.

The CT is the fixed image: its grid and Hounsfield units are what the slices and the HU metrics
are defined on, so only the MR is interpolated. Initialisation aligns the centres of mass of the
two head masks (robust across modalities, unlike intensity moments: bone is bright in CT and
dark in T1 MR). The metric is restricted to a dilated CT head mask so that couch and air do not
drive it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from mrct.preprocess.ants_bridge import to_ants
from mrct.preprocess.threads import REGISTRATION_THREADS, itk_threads

log = logging.getLogger(__name__)
BACKENDS = ("simpleitk", "ants")
#: An MR head this much (mm, each side) shorter than the CT head is a slab: its start is searched.
SLAB_MARGIN_MM = 10.0
#: Spacing of the searched starts; the optimiser's capture range at the coarsest level is wider.
SLAB_STEP_MM = 5.0


def _initial_transform(ct_mask: sitk.Image, mr_mask: sitk.Image) -> sitk.Euler3DTransform:
    initial = sitk.CenteredTransformInitializer(
        sitk.Cast(ct_mask, sitk.sitkFloat32),
        sitk.Cast(mr_mask, sitk.sitkFloat32),
        sitk.Euler3DTransform(),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    return sitk.Euler3DTransform(initial)


def _extent_mm(mask: sitk.Image, axis: int = 2) -> float:
    """Physical extent of a mask along one axis of its grid (z: head to foot)."""
    indices = np.nonzero(sitk.GetArrayViewFromImage(mask).any(axis=tuple(a for a in range(3) if a != 2 - axis)))[0]
    return float((indices.max() - indices.min() + 1) * mask.GetSpacing()[axis]) if indices.size else 0.0


def _slab_offsets(ct_mask: sitk.Image, mr_mask: sitk.Image, step_mm: float = SLAB_STEP_MM) -> list[float]:
    """Head-to-foot shifts of the start to try when the MR shows a slab of the head (0 otherwise).

    Centres of mass align a whole head with a whole head. An MR with a small field of view
    covers a slab whose centre is not the CT head's (35 mm away for a 30 % slab of a demo
    head): its true place lies anywhere within half the difference of the two extents. So when
    the MR's head is more than ``SLAB_MARGIN_MM`` shorter than the CT's, the starts along that
    range are scored. Measured on three demo slabs (300 iterations): errors 0.22-0.64 mm from
    the searched start, 0.37-0.76 mm from the centres of mass. With 60 iterations neither
    converges (1-13 mm): a slab constrains the tilt weakly and the optimiser crawls.
    """
    free = (_extent_mm(ct_mask) - _extent_mm(mr_mask)) / 2
    if free <= SLAB_MARGIN_MM:
        return [0.0]
    steps = int(np.floor(free / step_mm))
    return [float(k * step_mm) for k in range(-steps, steps + 1)]


def _best_start(method: sitk.ImageRegistrationMethod, ct: sitk.Image, mr: sitk.Image,
                initial: sitk.Euler3DTransform, offsets: list[float]) -> sitk.Euler3DTransform:
    """The start among ``initial`` shifted head-to-foot by each offset with the best metric.

    Scored on images shrunk to the coarsest level (all voxels of the fixed mask), which is
    where the optimiser will start from.
    """
    if len(offsets) == 1:
        return initial
    axis = np.asarray(ct.GetDirection()).reshape(3, 3)[:, 2]  # the CT's head-to-foot axis, physical
    scores = []
    for offset in offsets:
        start = sitk.Euler3DTransform(initial)
        start.SetTranslation(tuple(np.asarray(initial.GetTranslation()) + offset * axis))
        method.SetInitialTransform(start, inPlace=False)
        scores.append(method.MetricEvaluate(ct, mr))
    best = int(np.argmin(scores))
    log.info("slab MR: start shifted %.0f mm head-to-foot (best of %d starts)", offsets[best], len(offsets))
    start = sitk.Euler3DTransform(initial)
    start.SetTranslation(tuple(np.asarray(initial.GetTranslation()) + offsets[best] * axis))
    return start


def _sampling_percentages(fixed_mask: sitk.Image, shrink_factors: list[int], samples: int) -> list[float]:
    """Per-level fraction of voxels to sample so that about ``samples`` land inside the mask.

    Mattes MI needs a number of samples to fill its joint histogram, whatever the voxel size:
    a fixed fraction would spend 8x the work on a 1 mm scan as on a 2 mm one at the finest
    level, and starve the coarsest. ITK draws over the whole level and drops points outside
    the mask, hence the division by the mask's share of each level.
    """
    mask_voxels = float(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    return [min(1.0, samples * factor**3 / max(mask_voxels, 1.0)) for factor in shrink_factors]


def _crop_to_mask(image: sitk.Image, mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Both cut to the mask's bounding box.

    ITK draws metric samples over the whole fixed image and only then drops those outside the
    mask, so air and couch around the head cost time (most of the coarse level's) for nothing.
    The transform is physical, so cropping the fixed image does not change it.
    """
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(mask)
    if not shape.HasLabel(1):
        return image, mask
    box = shape.GetBoundingBox(1)
    start, size = list(box[:3]), list(box[3:])
    return sitk.RegionOfInterest(image, size, start), sitk.RegionOfInterest(mask, size, start)


def register_simpleitk(ct: sitk.Image, mr: sitk.Image, ct_mask: sitk.Image, mr_mask: sitk.Image,
                       settings: dict[str, Any], seed: int,
                       start: sitk.Euler3DTransform | None = None) -> sitk.Euler3DTransform:
    """Mattes MI rigid registration; from ``start`` when given, else from the masks' centres of mass."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings["histogram_bins"])
    fixed_mask = sitk.BinaryDilate(sitk.Cast(ct_mask, sitk.sitkUInt8), [3, 3, 3])
    ct, fixed_mask = _crop_to_mask(ct, fixed_mask)
    method.SetMetricSamplingStrategy(method.RANDOM)
    percentages = _sampling_percentages(fixed_mask, settings["shrink_factors"], settings["metric_samples"])
    # ITK reads seed 0 as "seed from the clock"; every config seed must give fixed samples.
    method.SetMetricSamplingPercentagePerLevel(percentages, seed % (2**32 - 1) + 1)
    method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings["learning_rate"],
        minStep=1e-4,
        numberOfIterations=settings["iterations"],
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    # Scales from physical shift make one radian and one millimetre comparable steps.
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings["shrink_factors"]))
    method.SetSmoothingSigmasPerLevel(list(settings["smoothing_sigmas_mm"]))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    initial = _initial_transform(ct_mask, mr_mask) if start is None else start
    offsets = _slab_offsets(ct_mask, mr_mask) if start is None else [0.0]
    if len(offsets) > 1:
        coarse = settings["shrink_factors"][0]
        shrunk = [sitk.Shrink(image, [coarse] * 3) for image in (ct, fixed_mask, mr)]
        method.SetMetricFixedMask(shrunk[1])
        initial = _best_start(method, sitk.Cast(shrunk[0], sitk.sitkFloat32), sitk.Cast(shrunk[2], sitk.sitkFloat32),
                              initial, offsets)
        method.SetMetricFixedMask(fixed_mask)
    method.SetInitialTransform(initial, inPlace=False)
    result = method.Execute(sitk.Cast(ct, sitk.sitkFloat32), sitk.Cast(mr, sitk.sitkFloat32))
    log.info("registration stopped after %d iterations: %s (metric %.4f)", method.GetOptimizerIteration(),
             method.GetOptimizerStopConditionDescription(), method.GetMetricValue())
    composite = sitk.CompositeTransform(result)
    return sitk.Euler3DTransform(composite.GetNthTransform(composite.GetNumberOfTransforms() - 1))


def register_ants(ct: sitk.Image, mr: sitk.Image, ct_mask: sitk.Image, mr_mask: sitk.Image,
                  settings: dict[str, Any], seed: int, workdir: Path) -> sitk.Transform:
    import ants

    result = ants.registration(
        fixed=to_ants(ct),
        moving=to_ants(mr),
        type_of_transform="Rigid",
        aff_metric="mattes",
        aff_sampling=settings["histogram_bins"],
        aff_iterations=tuple([settings["iterations"]] * len(settings["shrink_factors"])),
        aff_shrink_factors=tuple(settings["shrink_factors"]),
        # ANTsPy's smoothing_in_mm=True made antsRegistration exit 1 here (antspyx 0.6.3), so
        # the sigmas are converted to voxels of the fixed image instead.
        aff_smoothing_sigmas=tuple(s / min(ct.GetSpacing()) for s in settings["smoothing_sigmas_mm"]),
        outprefix=str(workdir / "ants_"),
    )
    # ANTs writes an ITK transform file (.mat); ITK's reader understands it, same LPS convention.
    return sitk.ReadTransform(result["fwdtransforms"][0])


def register(ct: sitk.Image, mr: sitk.Image, ct_mask: sitk.Image, mr_mask: sitk.Image,
             settings: dict[str, Any], seed: int, workdir: Path) -> sitk.Transform:
    """Transform mapping CT (fixed) physical points to MR (moving) points."""
    backend = settings["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"registration backend must be one of {BACKENDS}, got {backend!r}")
    levels = (len(settings["shrink_factors"]), len(settings["smoothing_sigmas_mm"]))
    if levels[0] != levels[1]:
        raise ValueError(f"registration: shrink_factors and smoothing_sigmas_mm need equal lengths, got {levels}")
    if backend == "ants":
        return register_ants(ct, mr, ct_mask, mr_mask, settings, seed, workdir)
    # The initial moments as well as the metric: the optimiser stops within its minimum step
    # (1e-4), and any difference in the start takes it to another point inside that tolerance.
    with itk_threads(REGISTRATION_THREADS):
        return register_simpleitk(ct, mr, ct_mask, mr_mask, settings, seed)


MODES = ("auto", "always")
#: Grids are the same when sizes are equal and spacing, origin and direction agree within this
#: fraction (of a voxel for the origin): NIfTI headers store them in float32, MetaImage as text.
GRID_TOLERANCE = 1e-3


def grid_difference(a: sitk.Image, b: sitk.Image) -> str:
    """Why two images are not on one grid ('' when they are, within GRID_TOLERANCE)."""
    if a.GetSize() != b.GetSize():
        return f"size {a.GetSize()} vs {b.GetSize()}"
    spacing_a, spacing_b = np.asarray(a.GetSpacing()), np.asarray(b.GetSpacing())
    if np.any(np.abs(spacing_a - spacing_b) > GRID_TOLERANCE * spacing_a):
        return f"spacing {tuple(spacing_a)} vs {tuple(spacing_b)} mm"
    if np.any(np.abs(np.subtract(a.GetDirection(), b.GetDirection())) > GRID_TOLERANCE):
        return "direction differs"
    if np.any(np.abs(np.subtract(a.GetOrigin(), b.GetOrigin())) > GRID_TOLERANCE * spacing_a):
        return f"origin {a.GetOrigin()} vs {b.GetOrigin()} mm"
    return ""


def _box_corners(image: sitk.Image, mask: sitk.Image) -> np.ndarray:
    """Physical corners of the mask's bounding box (of the whole image when the mask is empty)."""
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(sitk.Cast(mask, sitk.sitkUInt8))
    if shape.HasLabel(1):
        box = shape.GetBoundingBox(1)
        lo, hi = np.asarray(box[:3]), np.asarray(box[:3]) + np.asarray(box[3:]) - 1
    else:
        lo, hi = np.zeros(3, int), np.asarray(image.GetSize()) - 1
    corners = [[(hi if bit else lo)[axis] for axis, bit in enumerate(bits)] for bits in np.ndindex(2, 2, 2)]
    return np.array([image.TransformIndexToPhysicalPoint([int(v) for v in c]) for c in corners])


def alignment_change_mm(ct: sitk.Image, mr: sitk.Image, ct_mask: sitk.Image, mr_mask: sitk.Image,
                        settings: dict[str, Any], seed: int) -> float:
    """How far (mm, most over the corners of the CT head's box) a registration that starts
    from the given alignment moves it: near 0 for an MR that is already aligned.

    The check runs the registration's own metric and optimiser from the identity, over the
    pyramid's finer levels only (the coarsest level makes large moves, which an aligned pair
    does not need), so it costs less than a registration and measures what one would change.
    """
    levels = max(1, len(settings["shrink_factors"]) - 1)
    finer = {**settings, "shrink_factors": list(settings["shrink_factors"])[-levels:],
             "smoothing_sigmas_mm": list(settings["smoothing_sigmas_mm"])[-levels:]}
    with itk_threads(REGISTRATION_THREADS):
        moved = register_simpleitk(ct, mr, ct_mask, mr_mask, finer, seed, start=sitk.Euler3DTransform())
    displacement, _ = transform_error(moved, sitk.Euler3DTransform(), _box_corners(ct, ct_mask))
    return displacement


def register_or_keep(ct: sitk.Image, mr: sitk.Image, ct_mask: sitk.Image, mr_mask: sitk.Image,
                     settings: dict[str, Any], seed: int, workdir: Path) -> tuple[sitk.Transform, sitk.Image, bool]:
    """(transform, MR on the CT grid, whether the MR was kept as given); the log says why.

    ``settings["mode"]`` ``auto`` keeps the MR voxels as they are when the MR is on the CT's grid
    (grid_difference is empty) and a registration from there moves no corner of the CT head's
    box by ``aligned_tolerance_mm`` or more (alignment_change_mm): resampling an aligned MR only
    blurs it (one more interpolation) and risks a worse alignment than the one it came with.
    Every other MR, and every MR with ``always``, is registered and resampled.
    """
    mode = settings["mode"]
    if mode not in MODES:
        raise ValueError(f"preprocess.registration.mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        difference = grid_difference(ct, mr)
        if difference:
            reason = f"registered: the MR is not on the CT grid ({difference})"
        else:
            change = alignment_change_mm(ct, mr, ct_mask, mr_mask, settings, seed)
            tolerance = settings["aligned_tolerance_mm"]
            if change < tolerance:
                as_given = sitk.Cast(mr, sitk.sitkFloat32)
                as_given.CopyInformation(ct)  # equal within GRID_TOLERANCE; now exactly the CT's grid
                reason = (f"kept as given: on the CT grid and aligned (a registration from there moves it "
                          f"{change:.2f} mm < {tolerance} mm)")
                log.info("MR %s", reason)
                return sitk.Euler3DTransform(), as_given, True
            reason = f"registered: on the CT grid but {change:.2f} mm off (>= {tolerance} mm)"
    else:
        reason = "registered (preprocess.registration.mode: always)"
    log.info("MR %s", reason)
    transform = register(ct, mr, ct_mask, mr_mask, settings, seed, workdir)
    return transform, resample_to(ct, mr, transform), False


def resample_to(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """Moving image on the fixed grid; B-spline interpolation, background 0 (air in MR)."""
    return sitk.Cast(sitk.Resample(moving, fixed, transform, sitk.sitkBSpline, 0.0), sitk.sitkFloat32)


def _rotation_matrix(transform: sitk.Transform) -> np.ndarray:
    """Rotation part of a rigid transform, from how it moves the three unit vectors."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    return np.stack([np.asarray(transform.TransformPoint(tuple(e))) - origin for e in np.eye(3)], axis=1)


def transform_error(estimated: sitk.Transform, truth: sitk.Transform, points: np.ndarray) -> tuple[float, float]:
    """(max displacement in mm over ``points``, rotation angle in degrees) between two rigid transforms.

    Used by the tests and the demo QA to compare a recovered transform with the known one.
    """
    displacements = [np.linalg.norm(np.subtract(estimated.TransformPoint(p), truth.TransformPoint(p))) for p in points]
    matrices = [_rotation_matrix(t) for t in (estimated, truth)]
    relative = matrices[0] @ matrices[1].T
    angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
    return float(max(displacements)), float(angle)
