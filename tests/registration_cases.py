"""Registration-QA cases on real head anatomy: correct pairs, mix-ups, slabs and failed registrations.

Built from the real single-subject T1 of ``real_head`` (pycortex's S1), never from the demo's
template, so the QA's bounds are set on anatomy with a real scan's fine structure:

* a CT-like volume derived from the T1: air, scalp fat, skull (the dark band between scalp and
  brain), CSF, grey and white matter get typical Hounsfield units, with partial volume and CT
  noise. The mapping is not monotone (dark CSF and dark bone land at 8 and 1200 HU), as
  between real MR and CT;
* the MR: the T1 moved by a known rigid misalignment (up to 9 mm and 9 degrees), times a smooth
  multiplicative field and with Rician noise (``real_head.biased_real_head``), optionally cut to
  a slab (a small field of view);
* another head: the same T1 mirrored left-right (another gyral pattern on the same skull shape:
  the hardest mix-up, a head of the same size and outline), deformed by a smooth random 10 mm
  field and scaled (0.9, 1.0, 1.1);
* a failed registration: the optimiser started 40 mm from the truth with too few iterations.

Both images are written at 2 mm (the pipeline's own steps run on them) to keep tests fast; the
anatomy is sampled from the 1 mm scan once per image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

import real_head
from mrct.preprocess.masks import mr_head_mask
from mrct.preprocess.register import transform_error
from mrct.preprocess.registration_qa import registration_qa_files
from mrct.preprocess.steps import bias_correct_files, register_files

SPACING_MM = 2.0
#: Hounsfield units of the tissue classes of the CT-like volume.
HU = {"air": -1000.0, "fat": -80.0, "bone": 1200.0, "csf": 8.0, "grey": 40.0, "white": 28.0}
#: Depth below the head surface (mm) within which dark T1 is skull, and below which it is CSF.
SKULL_DEPTH_MM = (3.0, 14.0)
CT_NOISE_HU = 10.0
MARGIN_MM = 16.0


def _array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float64)


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def grid(image: sitk.Image, spacing: float = SPACING_MM, margin_mm: float = 0.0) -> sitk.Image:
    """An empty grid over ``image``'s extent plus ``margin_mm`` each side, at ``spacing``."""
    extent = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing()) + 2 * margin_mm
    size = [int(np.ceil(e / spacing)) for e in extent]
    out = sitk.Image(size, sitk.sitkFloat32)
    out.SetSpacing([spacing] * 3)
    out.SetDirection(image.GetDirection())
    corner = np.asarray(image.TransformContinuousIndexToPhysicalPoint([-0.5] * 3)) - margin_mm
    out.SetOrigin(tuple(corner + spacing / 2))  # LPS-oriented grids: axes along +x, +y, +z
    return out


def _down(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform, default: float) -> sitk.Image:
    """``image`` seen through ``transform`` on the coarser ``reference``, anti-aliased first."""
    smooth = sitk.SmoothingRecursiveGaussian(image, 0.4 * reference.GetSpacing()[0])
    return sitk.Resample(smooth, reference, transform, sitk.sitkLinear, default, sitk.sitkFloat32)


def ct_like(t1: sitk.Image, seed: int) -> sitk.Image:
    """A CT-like volume (HU) of the head in ``t1``, on a 2 mm grid, with CT noise."""
    values = _array(sitk.SmoothingRecursiveGaussian(t1, 0.7))
    head = _array(mr_head_mask(t1)) > 0
    depth = ndimage.distance_transform_edt(head, sampling=t1.GetSpacing()[::-1])
    white = np.percentile(values[head & (depth > 30)], 90)
    t = values / white
    dark = t < 0.35
    shell = (depth > SKULL_DEPTH_MM[0]) & (depth < SKULL_DEPTH_MM[1])
    hu = np.full(values.shape, HU["air"])
    brain_hu = HU["grey"] + (HU["white"] - HU["grey"]) * np.clip((t - 0.6) / 0.4, 0, 1)
    hu[head] = brain_hu[head]
    hu[head & (depth <= SKULL_DEPTH_MM[0]) & ~dark] = HU["fat"]  # scalp
    hu[head & shell & (t > 0.9)] = HU["fat"]  # bright fat in the scalp and the diploe
    hu[head & shell & dark] = HU["bone"]
    hu[head & ~shell & (depth >= SKULL_DEPTH_MM[1]) & dark] = HU["csf"]
    ct = _down(_like(hu, t1), grid(t1), sitk.Transform(), HU["air"])
    rng = np.random.default_rng(seed)
    noisy = _array(ct) + rng.normal(0, CT_NOISE_HU, ct.GetSize()[::-1])
    return _like(noisy, ct)


def centre(image: sitk.Image) -> tuple[float, float, float]:
    return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])


def misalignment(image: sitk.Image, rotation_deg, translation_mm) -> sitk.Euler3DTransform:
    """Rigid motion about the image centre (MR voxel point -> anatomy point)."""
    return sitk.Euler3DTransform(centre(image), *np.deg2rad(rotation_deg), tuple(translation_mm))


def other_head(t1: sitk.Image, seed: int, scale: float, deformation_mm: float = 10.0) -> sitk.Image:
    """Another head: ``t1`` mirrored left-right, smoothly deformed and ``scale`` times larger."""
    mirrored = _like(_array(t1)[:, :, ::-1], t1)
    deform = sitk.BSplineTransformInitializer(t1, [1, 1, 1], order=3)
    rng = np.random.default_rng(seed)
    deform.SetParameters(tuple(float(v) for v in rng.uniform(-1, 1, len(deform.GetParameters())) * deformation_mm))
    size = sitk.ScaleTransform(3, (1 / scale,) * 3)
    size.SetCenter(centre(t1))
    view = sitk.CompositeTransform(3)
    view.AddTransform(deform)
    view.AddTransform(size)  # applied first
    return sitk.Resample(mirrored, t1, view, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def mr_like(anatomy: sitk.Image, name: str, seed: int, motion: sitk.Transform, bias: dict[str, Any],
            slab: tuple[float, float] | None = None, noise_fraction: float = real_head.NOISE_FRACTION) -> sitk.Image:
    """The MR of ``anatomy`` (1 mm T1) moved by ``motion``, biased and noisy, at 2 mm; a slab if asked.

    ``slab`` = (lo, hi): fractions of the head-to-foot extent of the MR's grid that it keeps.
    """
    moved = _down(anatomy, grid(anatomy, margin_mm=MARGIN_MM), motion, 0.0)
    mr, _ = real_head.biased_real_head(moved, name, seed, bias, noise_fraction)
    if slab is None:
        return mr
    size = mr.GetSize()
    start, stop = int(slab[0] * size[2]), int(slab[1] * size[2])
    return sitk.RegionOfInterest(mr, [size[0], size[1], stop - start], [0, 0, start])


def preprocess(root: Path, case: str, ct: sitk.Image, mr: sitk.Image, config: dict[str, Any],
               registration: dict[str, Any] | None = None) -> dict[str, str]:
    """N4, registration and QA through the pipeline's own file steps; the files written."""
    raw, out = root / "raw" / case, root / "preprocessed" / case
    raw.mkdir(parents=True)
    sitk.WriteImage(mr, str(raw / "mr.nii.gz"))
    sitk.WriteImage(ct, str(raw / "ct.nii.gz"))
    files = {f"bias_{k}": str(out / f"bias_{k}.nii.gz") for k in ("mr", "field", "mask")}
    bias_correct_files(str(raw / "mr.nii.gz"), {"mr": files["bias_mr"], "field": files["bias_field"],
                                                "mask": files["bias_mask"], "qa": str(out / "bias_qa.png")},
                       "n4", config["preprocess"]["n4"], case)
    files |= {k: str(out / f"{k}.nii.gz") for k in ("mr", "ct", "mask")}
    files |= {"transform": str(out / "mr_to_ct.tfm"), "qa": str(out / "qa.png"), "record": str(out / "qa.json")}
    register_files(files["bias_mr"], files["bias_mask"], str(raw / "ct.nii.gz"),
                   {k: files[k] for k in ("mr", "ct", "mask", "transform", "qa")},
                   registration or config["preprocess"]["registration"],
                   config["preprocess"]["head_threshold_hu"], config["seed"], case)
    qa(files, case)
    return files


def qa(files: dict[str, str], case: str) -> dict[str, Any]:
    return registration_qa_files(files["ct"], files["mr"], files["mask"], files["bias_mask"], files["transform"],
                                 files["record"], case, mr_native_path=files["bias_mr"])


def failed_registration(files: dict[str, str], truth: sitk.Transform, root: Path, case: str,
                        offset_mm: float = 40.0, iterations: int = 5) -> tuple[dict[str, str], float]:
    """The pair in ``files`` registered again from ``offset_mm`` off the truth with few iterations.

    Returns the files (the bias-corrected MR and masks shared, a new transform, registered MR
    and QA record) and how far the result is from the truth (mm, over the head's corners).
    """
    ct = sitk.ReadImage(files["ct"], sitk.sitkFloat32)
    mr = sitk.ReadImage(files["bias_mr"], sitk.sitkFloat32)
    start = sitk.Euler3DTransform(truth)
    start.SetTranslation(tuple(np.asarray(truth.GetTranslation()) + (offset_mm, 0.0, 0.0)))
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(50)
    method.SetMetricFixedMask(sitk.ReadImage(files["mask"], sitk.sitkUInt8))
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, iterations)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2])
    method.SetSmoothingSigmasPerLevel([1.0])
    method.SetInitialTransform(start, inPlace=False)
    result = method.Execute(ct, mr)
    composite = sitk.CompositeTransform(result)
    found = sitk.Euler3DTransform(composite.GetNthTransform(composite.GetNumberOfTransforms() - 1))
    out = Path(files["ct"]).parent.parent / case
    out.mkdir(parents=True, exist_ok=True)
    failed = dict(files) | {"transform": str(out / "mr_to_ct.tfm"), "mr": str(out / "mr.nii.gz"),
                            "record": str(out / "qa.json")}
    sitk.WriteTransform(found, failed["transform"])
    sitk.WriteImage(sitk.Resample(mr, ct, found, sitk.sitkLinear, 0.0, sitk.sitkFloat32), failed["mr"])
    qa(failed, case)
    return failed, error_mm(found, truth, ct)


def error_mm(found: sitk.Transform, truth: sitk.Transform, ct: sitk.Image) -> float:
    """Largest displacement between two CT -> MR transforms over a 100 mm box about the CT centre."""
    c = np.asarray(centre(ct))
    corners = [c + 50 * (2 * np.array(s) - 1) for s in np.ndindex(2, 2, 2)]
    return transform_error(found, truth, np.asarray(corners))[0]
