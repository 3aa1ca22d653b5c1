"""The embedded demo data set: synthetic MR/CT head pairs made from a real brain template.

Anatomy comes from nilearn's MNI152 (2009a) template and its grey/white-matter maps, which ship
inside the nilearn wheel, so the demo runs offline. The template is skull-stripped, so the head
around the brain (outer CSF, skull with diploe, scalp) is modelled as shells at fixed distances
from the brain surface. Every patient gets, from its own seed:

- a smooth random deformation of the anatomy (B-spline, ``deformation_mm`` at most);
- a CT in Hounsfield units from tissue fractions (partial volume kept);
- a T1-like MR (template intensities in the brain, tissue model outside) with a smooth
  multiplicative bias field and Rician noise;
- a random rigid misalignment of the MR against the CT.

Two choices keep the saved truth true. The template's own T1 is not uniform: pure white matter
varies smoothly by about 0.02 in log intensity (a residual field of the scans it was averaged
from), which any bias correction rightly removes; that smooth part is divided out when the
template is loaded, so the applied field is the only smooth non-uniformity in the MR. And
both images are sampled once from one head model, as two scanners sample one head: resampling
an already sampled MR would blur it more than the CT, and skull shells built separately on
each grid would disagree by up to a voxel (registration errors of 1.1 mm at 2 mm, from 0.5).

The true bias field and the true MR->CT transform are written beside the volumes, so tests can
check that bias correction and registration recover them. Everything is labelled synthetic.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mrct.io.atomic import atomic_path, write_text_atomic

# Hounsfield units of the modelled tissues (typical adult head CT values).
CT_HU = {"air": -1000.0, "csf": 8.0, "grey": 40.0, "white": 28.0, "cortical_bone": 1400.0,
         "diploe": 500.0, "scalp": 30.0}
# T1-weighted MR intensities relative to white matter (air ~ 0, cortical bone dark, fatty
# diploe and scalp bright); the brain itself keeps the template's own T1 intensities.
MR_T1 = {"air": 0.0, "csf": 0.15, "cortical_bone": 0.05, "diploe": 0.7, "scalp": 0.8}
# Shells around the brain surface, in mm: outer CSF, inner table, diploe, outer table, scalp.
SHELLS_MM = {"csf": 2.0, "inner_table": 4.0, "diploe": 7.0, "outer_table": 9.0, "scalp": 15.0}
MR_SCALE = 1000.0  # arbitrary scanner units for white matter


def demo_patient_ids(n_patients: int) -> list[str]:
    return [f"demo{index:03d}" for index in range(1, n_patients + 1)]


def check_mixed_up(settings: dict[str, Any]) -> None:
    """``dataset.demo.mixed_up`` must name demo patients that exist, or it would do nothing."""
    unknown = sorted(set(settings.get("mixed_up", [])) - set(demo_patient_ids(settings["n_patients"])))
    if unknown:
        raise ValueError(f"dataset.demo.mixed_up: {unknown} are not demo patients "
                         f"(dataset.demo.n_patients is {settings['n_patients']}: demo001 to "
                         f"demo{settings['n_patients']:03d})")


@dataclass(frozen=True)
class DemoPatientParameters:
    """Everything random about one demo patient, drawn once from its seed."""

    patient: str
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    deformation_coefficients: tuple[float, ...]
    bias_coefficients: tuple[float, ...]
    noise_seed: int


def draw_parameters(seed: int, patient: str, settings: dict[str, Any]) -> DemoPatientParameters:
    """Draw one patient's parameters; separate from their application so any case is reproducible."""
    index = int("".join(ch for ch in patient if ch.isdigit()) or 0)
    rng = np.random.default_rng([seed, index])
    rotation = rng.uniform(-1, 1, 3) * settings["max_rotation_deg"]
    translation = rng.uniform(-1, 1, 3) * settings["max_shift_mm"]
    deformation = rng.uniform(-1, 1, 3 * _DEFORMATION_GRID**3)
    bias = rng.normal(size=len(_BIAS_FREQUENCIES) * 2)
    return DemoPatientParameters(
        patient=patient,
        rotation_deg=tuple(float(v) for v in rotation),
        translation_mm=tuple(float(v) for v in translation),
        deformation_coefficients=tuple(float(v) for v in deformation),
        bias_coefficients=tuple(float(v) for v in bias),
        noise_seed=int(rng.integers(2**31)),
    )


#: A mixed-up patient's MR shows another head: the template under another seed's deformation,
#: this strong (mm) instead of ``deformation_mm``, and this much smaller.
MIXUP_DEFORMATION_MM = 15.0
MIXUP_SCALE = 0.9
MIXUP_SEED_OFFSET = 1

_DEFORMATION_GRID = 4  # B-spline control points per axis (plus the order's border)
# Beyond the largest move the demo makes: rotation about the centre, shift and deformation.
_PAD_MM = 40.0
# Low spatial frequencies (cycles per field of view) of the bias field: smooth, as in real coils.
_BIAS_FREQUENCIES = [(0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5), (0.5, 0.5, 0), (0, 0.5, 0.5), (0.5, 0, 0.5)]


def _to_sitk(image: nib.Nifti1Image) -> sitk.Image:
    """NIfTI (RAS world, array x,y,z) -> SimpleITK (LPS world, array z,y,x)."""
    affine = image.affine
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])  # ITK's world flips the x and y axes of NIfTI's
    direction = ras_to_lps @ (affine[:3, :3] / spacing)
    out = sitk.GetImageFromArray(np.asarray(image.get_fdata(), dtype=np.float32).transpose(2, 1, 0))
    out.SetSpacing([float(s) for s in spacing])
    out.SetOrigin([float(v) for v in ras_to_lps @ affine[:3, 3]])
    out.SetDirection([float(v) for v in direction.ravel()])
    return sitk.DICOMOrient(out, "LPS")


def load_template(resolution_mm: int) -> dict[str, sitk.Image]:
    """T1, grey- and white-matter probability and brain mask of the MNI152 template."""
    # Imported here: rules/common.smk imports this module for demo_patient_ids while Snakemake
    # builds the DAG, and nilearn (with scikit-learn) takes seconds to import.
    from nilearn import datasets

    # The schema allows 1 and 2, and YAML's 1.0 equals 1 there; nilearn takes integers only.
    resolution_mm = int(resolution_mm)
    template = {
        "t1": _to_sitk(datasets.load_mni152_template(resolution=resolution_mm)),
        "grey": _to_sitk(datasets.load_mni152_gm_template(resolution=resolution_mm)),
        "white": _to_sitk(datasets.load_mni152_wm_template(resolution=resolution_mm)),
        "brain": _to_sitk(datasets.load_mni152_brain_mask(resolution=resolution_mm)),
    }
    template["t1"] = flatten_white_matter(template["t1"], template["white"])
    return template


def flatten_white_matter(t1: sitk.Image, white: sitk.Image, min_probability: float = 0.95) -> sitk.Image:
    """Divide out the smooth (quadratic in space) part of log T1 fitted over pure white matter.

    White matter has one T1, so its smooth variation is a field, not anatomy. A quadratic is
    smoother than any field the demo applies or N4 fits, so it cannot remove anatomy.
    """
    values = sitk.GetArrayFromImage(t1).astype(np.float64)
    pure = (sitk.GetArrayFromImage(white) > min_probability) & (values > 0)
    # Centred and scaled coordinates keep the least-squares problem well conditioned.
    coords = [(axis - axis[pure].mean()) / values.shape[i] for i, axis in enumerate(np.indices(values.shape))]
    terms = [np.ones_like(values), *coords] + [coords[i] * coords[j] for i in range(3) for j in range(i, 3)]
    design = np.stack([term[pure] for term in terms], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, np.log(values[pure]), rcond=None)
    smooth = sum(c * term for c, term in zip(coefficients[1:], terms[1:], strict=True))
    out = sitk.GetImageFromArray((values * np.exp(-smooth)).astype(np.float32))
    out.CopyInformation(t1)
    return out


def _deformation(reference: sitk.Image, params: DemoPatientParameters, max_mm: float) -> sitk.Transform:
    transform = sitk.BSplineTransformInitializer(reference, [_DEFORMATION_GRID - 3] * 3, order=3)
    coefficients = np.asarray(params.deformation_coefficients)[: len(transform.GetParameters())]
    transform.SetParameters(tuple(float(v) for v in coefficients * max_mm))
    return transform


def _sample(model: HeadModel, transform: sitk.Transform, *names: str) -> dict[str, sitk.Image]:
    """The model's images seen through ``transform`` (output point -> template point) on its grid."""
    return {name: sitk.Resample(model.padded[name], model.grid, transform, sitk.sitkLinear, 0.0) for name in names}


def _tissue_fractions(anatomy: dict[str, sitk.Image]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fractions per tissue (summing to 1 in each voxel) and the template T1 inside the brain."""
    brain = sitk.GetArrayFromImage(anatomy["brain"]).clip(0, 1)
    grey = sitk.GetArrayFromImage(anatomy["grey"]).clip(0, 1) * brain
    white = sitk.GetArrayFromImage(anatomy["white"]).clip(0, 1) * brain
    scale = np.sum(np.stack([grey, white]), axis=0)
    over = scale > 1
    grey[over] /= scale[over]
    white[over] /= scale[over]
    inner_csf = brain - grey - white
    spacing = anatomy["brain"].GetSpacing()[::-1]
    distance = ndimage.distance_transform_edt(brain < 0.5, sampling=spacing)
    outside = 1.0 - brain

    def shell(lo: float, hi: float) -> np.ndarray:
        return ((distance > lo) & (distance <= hi)).astype(np.float64) * outside

    fractions = {
        "grey": grey,
        "white": white,
        "csf": inner_csf + shell(0, SHELLS_MM["csf"]) + (distance == 0) * outside,
        "cortical_bone": shell(SHELLS_MM["csf"], SHELLS_MM["inner_table"])
        + shell(SHELLS_MM["diploe"], SHELLS_MM["outer_table"]),
        "diploe": shell(SHELLS_MM["inner_table"], SHELLS_MM["diploe"]),
        "scalp": shell(SHELLS_MM["outer_table"], SHELLS_MM["scalp"]),
    }
    fractions["air"] = np.clip(1.0 - sum(fractions.values()), 0, 1)
    # Smooth the shells a little so that tissue boundaries have partial volume, as in real scans.
    for name in ("csf", "cortical_bone", "diploe", "scalp", "air"):
        fractions[name] = ndimage.gaussian_filter(fractions[name], 0.5)
    total = sum(fractions.values())
    fractions = {name: f / total for name, f in fractions.items()}
    t1 = sitk.GetArrayFromImage(anatomy["t1"])
    return fractions, t1


def _bias_field(reference: sitk.Image, params: DemoPatientParameters, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field with peak-to-peak ``amplitude`` around 1."""
    shape = reference.GetSize()[::-1]
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    coefficients = np.asarray(params.bias_coefficients).reshape(-1, 2)
    log_field = np.zeros(shape)
    for (fz, fy, fx), (a, b) in zip(_BIAS_FREQUENCIES, coefficients, strict=True):
        phase = 2 * np.pi * (fz * grids[0] + fy * grids[1] + fx * grids[2])
        log_field += a * np.cos(phase) + b * np.sin(phase)
    log_field -= log_field.mean()
    span = log_field.max() - log_field.min()
    # exp keeps the field positive; scale so that max/min - 1 equals the requested amplitude.
    log_field *= np.log1p(amplitude) / span if span > 0 else 0.0
    return np.exp(log_field)


def rigid_transform(params: DemoPatientParameters, center: tuple[float, float, float]) -> sitk.Euler3DTransform:
    """The rigid transform that resamples the MR out of alignment (output point -> anatomy point)."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter(center)
    transform.SetRotation(*np.deg2rad(params.rotation_deg))
    transform.SetTranslation(params.translation_mm)
    return transform


@dataclass(frozen=True)
class HeadModel:
    """Noise-free CT (HU) and T1-like MR (scanner units) of the undeformed template head.

    Both modalities are modelled once on the template's grid and each is then sampled once per
    patient, the CT through the deformation and the MR through deformation and misalignment, so
    neither image is an interpolation of an interpolation and their skull shells agree.

    The template's field of view cuts the brain stem. A moved head brings points from beyond that
    cut into view, and with a zero default they would be air, and the skull model would wrap a
    cap of bone and scalp under the cut that the CT does not have. The images are therefore kept
    padded by repeating their border slices (zero-flux), which continues the anatomy there;
    elsewhere the border is air anyway.
    """

    grid: sitk.Image  # the template's grid, on which every patient's volumes are written
    padded: dict[str, sitk.Image]  # "ct", "mr" and "brain", continued past the field of view


def load_head_model(resolution_mm: int) -> HeadModel:
    template = load_template(resolution_mm)
    fractions, t1 = _tissue_fractions(template)
    ct = sum(CT_HU[name] * fractions[name] for name in fractions)
    white = fractions["white"] > 0.9
    white_level = np.percentile(t1[white], 50) if np.any(white) else t1.max()
    brain_t1 = t1 / max(white_level, 1e-6)
    brain_fraction = fractions["grey"] + fractions["white"]
    mr = (brain_fraction * brain_t1 + sum(MR_T1[name] * fractions[name] for name in MR_T1)) * MR_SCALE
    grid = template["brain"]
    pad = [math.ceil(_PAD_MM / spacing) for spacing in grid.GetSpacing()]
    images = {"ct": _image(ct, grid), "mr": _image(mr, grid), "brain": grid}
    return HeadModel(grid=grid, padded={name: sitk.ZeroFluxNeumannPad(image, pad, pad) for name, image in images.items()})


def _image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def _other_head(reference: sitk.Image, other: DemoPatientParameters, center: tuple[float, float, float]) -> sitk.Transform:
    """Another person's anatomy: a stronger deformation of the template, and a smaller head."""
    view = sitk.CompositeTransform(_deformation(reference, other, MIXUP_DEFORMATION_MM))
    size = sitk.ScaleTransform(3, (1 / MIXUP_SCALE,) * 3)
    size.SetCenter(center)
    view.AddTransform(size)  # applied first: the head MIXUP_SCALE times its size
    return view


def make_patient(model: HeadModel, params: DemoPatientParameters, settings: dict[str, Any],
                 other: DemoPatientParameters | None = None) -> dict[str, Any]:
    """Build one patient: CT (HU), MR (biased, noisy, misaligned), true bias field and transform.

    With ``other`` the MR shows another head (``_other_head``): a deliberate mix-up, for
    registration QA to catch; its "true" transform is then only the misalignment applied.
    Also returns ``mr_brain``, the brain mask in the MR's frame, for tests (not written).
    """
    reference = model.grid
    deformation = _deformation(reference, params, settings["deformation_mm"])
    center = reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()])
    misalign = rigid_transform(params, center)
    # The MR's voxel y shows the anatomy at misalign(y), i.e. the template at deformation(misalign(y)).
    # A composite transform applies the transform added last first.
    mr_view = sitk.CompositeTransform(deformation if other is None else _other_head(reference, other, center))
    mr_view.AddTransform(misalign)

    ct = _sample(model, deformation, "ct")["ct"]
    mr_head = _sample(model, mr_view, "mr", "brain")

    field = _bias_field(reference, params, settings["bias_amplitude"])
    rng = np.random.default_rng(params.noise_seed)
    sigma = settings["noise_fraction"] * MR_SCALE
    signal = sitk.GetArrayFromImage(mr_head["mr"]) * field
    # Rician noise: magnitude of a complex signal with Gaussian noise in both channels.
    mr = np.sqrt((signal + rng.normal(0, sigma, signal.shape)) ** 2 + rng.normal(0, sigma, signal.shape) ** 2)

    # Registration maps fixed (CT) points to moving (MR) points; the MR was made by sampling the
    # anatomy at misalign(y), so the transform that registration must find is its inverse.
    return {"mr": _image(mr, reference), "ct": ct, "bias_field": _image(field, reference),
            "mr_to_ct": misalign.GetInverse(), "mr_brain": mr_head["brain"] > 0.5}


def write_patient(patient: dict[str, Any], params: DemoPatientParameters, settings: dict[str, Any], out: dict[str, str]) -> None:
    """Write the volumes, the true field and transform, and a JSON record labelled synthetic."""
    for key in ("mr", "ct", "bias_field"):
        with atomic_path(out[key]) as tmp:
            sitk.WriteImage(patient[key], str(tmp), useCompression=True)
    with atomic_path(out["transform"]) as tmp:
        sitk.WriteTransform(patient["mr_to_ct"], str(tmp))
    record = {"synthetic": True, "source": "mrct demo (nilearn MNI152 2009a template)",
              "settings": settings, "parameters": {k: v for k, v in asdict(params).items()
                                                   if k not in ("deformation_coefficients", "bias_coefficients")}}
    write_text_atomic(out["info"], json.dumps(record, indent=2))


def make_demo_patient(seed: int, patient: str, settings: dict[str, Any], out: dict[str, str],
                      mixed_up: bool = False) -> None:
    """One demo patient's files; ``mixed_up``: its MR is another head's (``dataset.demo.mixed_up``)."""
    params = draw_parameters(seed, patient, settings)
    model = load_head_model(settings["resolution_mm"])
    other = draw_parameters(seed + MIXUP_SEED_OFFSET, patient, settings) if mixed_up else None
    record = {**settings, "mixed_up": mixed_up}
    write_patient(make_patient(model, params, settings, other), params, record, out)
