"""Reading MR and CT volumes from any common format, with validation and one fixed orientation.

Every later step (bias correction, registration, slicing) assumes a sound 3-D scalar volume.
Real data break that assumption in many ways: a truncated download, a 2-D scout image, a 4-D
series, a header with spacing in metres, a constant or NaN-filled export. Each of these is
caught here, on reading, with a ``VolumeError`` that names the file and the problem, instead of
surfacing later as a puzzling registration failure.

Supported: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) and a folder
holding a DICOM series (read with SimpleITK's ImageSeriesReader, i.e. GDCM, which applies the
rescale slope and intercept so CT comes out in Hounsfield units).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from mrct.io.atomic import atomic_path

log = logging.getLogger(__name__)

MODALITIES = ("mr", "ct")
MIN_SPACING_MM = 0.05
MAX_SPACING_MM = 20.0

# Orientation convention. ITK's physical space is DICOM's LPS: +x towards the patient's Left,
# +y towards Posterior, +z towards Superior (NIfTI files, which store RAS, are converted to this
# on reading by ITK). DICOMOrient(image, "LPS") permutes and flips the voxel axes (no
# resampling, so no interpolation) so that voxel index i, j, k grows along +x, +y, +z. The numpy
# array [k, j, i] of every volume is then a stack of axial slices from inferior to superior, each
# with rows from anterior to posterior and columns from the patient's right to left (the
# radiological view), whatever the file's own storage order. An oblique acquisition keeps its
# residual rotation in the direction matrix; axes are matched to the nearest anatomical ones.
ORIENTATION = "LPS"


class VolumeError(ValueError):
    """A volume cannot be used; the message names the file and the problem."""


def read_volume(path: str | Path, modality: str) -> sitk.Image:
    """Read, validate and reorient an MR or CT volume; return it as float32 in LPS orientation.

    ``path`` is an image file or a folder holding a DICOM series. ``modality`` ('mr' or 'ct')
    is used in messages and for the CT intensity sanity check (which only warns: data are
    never changed silently).
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: {modality.upper()} image not found (missing modality?)")
    image = _read_dicom_series(path, modality) if path.is_dir() else _read_file(path, modality)
    image = _check_shape(image, path)
    _check_spacing(image, path)
    image = sitk.Cast(image, sitk.sitkFloat32)
    values = sitk.GetArrayViewFromImage(image)
    _check_values(values, path)
    if modality == "ct":
        _warn_if_not_hounsfield(values, path)
    return sitk.DICOMOrient(image, ORIENTATION)


def write_volume(image: sitk.Image, path: str | Path) -> None:
    """Write ``image`` atomically (compressed when the format allows); the format follows the suffix."""
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as error:
            raise OSError(f"{path}: could not write image: {_itk_message(error)}") from None


# -- reading ----------------------------------------------------------------------------------


def _itk_message(error: BaseException) -> str:
    """The useful part of a SimpleITK error: without the C++ source location and object address."""
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    lines = [re.sub(r"^(ITK ERROR|sitk::ERROR):\s*(\w+\(0x[0-9a-f]+\):\s*)?", "", ln) for ln in lines]
    lines = [ln for ln in lines if not ln.endswith("trouble") and not ln.endswith(":")]
    return " ".join(lines[-2:]) if lines else str(error)


def _read_file(path: Path, modality: str) -> sitk.Image:
    if path.stat().st_size == 0:
        raise VolumeError(f"{path}: empty file (0 bytes), expected a {modality.upper()} volume")
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_data(path)
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise VolumeError(f"{path}: unreadable or truncated image file: {_itk_message(error)}") from None


def _check_nifti_data(path: Path) -> None:
    """Raise VolumeError if a NIfTI file's voxel data are cut short or hold NaN/inf values.

    Hand-written because ITK's NIfTI reader hides both problems (SimpleITK 2.5, checked in
    tests/test_volume_io.py): it zero-fills a truncated .nii or .nii.gz without an error, and it
    reads NaN and inf as 0, while its NRRD and MetaImage readers keep them. So the voxels are
    read once more by nibabel, an independent reader that does raise on a short or cut gzip
    stream; unscaled, so no float64 copy is made.
    """
    try:
        raw = np.asanyarray(nib.load(str(path)).dataobj.get_unscaled())
    except Exception as error:  # nibabel raises many types for a damaged file
        message = " ".join(str(error).split())
        raise VolumeError(
            f"{path}: unreadable or truncated NIfTI file ({type(error).__name__}: {message})"
        ) from None
    if raw.dtype.kind in "fc":
        bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        if bad:
            raise VolumeError(f"{path}: {bad} voxel(s) are NaN or infinite; expected finite values")


def _read_dicom_series(folder: Path, modality: str) -> sitk.Image:
    """Read the DICOM series with the most files found in ``folder`` or its sub-folders."""
    candidates: dict[tuple[str, str], tuple[str, ...]] = {}
    for dirpath, dirnames, _ in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(dirpath):
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirpath, uid)
            if files:
                candidates[(dirpath, uid)] = tuple(files)
    if not candidates:
        raise VolumeError(
            f"{folder}: no DICOM series found in this folder or its sub-folders "
            f"(expected the {modality.upper()} as a DICOM series folder)"
        )
    # Most files first; ties broken by folder and UID so the choice is reproducible.
    (dirpath, uid), files = min(candidates.items(), key=lambda item: (-len(item[1]), item[0]))
    if len(candidates) > 1:
        others = ", ".join(f"{u} ({len(f)} files)" for (_, u), f in candidates.items() if u != uid)
        log.warning("%s: %d DICOM series; using %s (%d files), ignoring %s",
                    folder, len(candidates), uid, len(files), others)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise VolumeError(f"{folder}: unreadable DICOM series {uid}: {_itk_message(error)}") from None


# -- validation -------------------------------------------------------------------------------


def _check_shape(image: sitk.Image, path: Path) -> sitk.Image:
    """A single scalar 3-D volume with at least 2 voxels along each axis (4-D with one frame is squeezed)."""
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise VolumeError(
            f"{path}: vector image with {components} components per voxel (RGB or multi-channel); "
            "expected a scalar 3-D volume"
        )
    size = image.GetSize()
    if image.GetDimension() == 4 and size[3] == 1:
        log.info("%s: 4-D image with a single frame, used as 3-D", path)
        image = sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
        size = image.GetSize()
    if image.GetDimension() == 2:
        raise VolumeError(f"{path}: 2-D image of size {size}; expected a 3-D volume")
    if image.GetDimension() != 3:
        raise VolumeError(
            f"{path}: {image.GetDimension()}-D image of size {size}; expected one 3-D volume "
            "(split time series or multi-echo data first)"
        )
    if min(size) < 2:
        raise VolumeError(
            f"{path}: 3-D image of size {size} has fewer than 2 voxels along an axis "
            "(a single slice); expected a 3-D volume"
        )
    return image


def _check_spacing(image: sitk.Image, path: Path) -> None:
    spacing = image.GetSpacing()
    if not all(np.isfinite(s) and MIN_SPACING_MM <= s <= MAX_SPACING_MM for s in spacing):
        raise VolumeError(
            f"{path}: absurd voxel spacing {tuple(round(s, 6) for s in spacing)} mm; expected "
            f"each value in [{MIN_SPACING_MM}, {MAX_SPACING_MM}] mm (wrong units in the header?)"
        )


def _check_values(values: np.ndarray, path: Path) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        raise VolumeError(f"{path}: {bad} voxel(s) are NaN or infinite; expected finite values")
    low, high = float(values.min()), float(values.max())
    if low == high:
        what = "empty (all zero)" if low == 0 else f"constant (every voxel is {low:g})"
        raise VolumeError(f"{path}: {what} volume; expected an image with contrast")


def _warn_if_not_hounsfield(values: np.ndarray, path: Path) -> None:
    """Warn (never change data) when a CT does not look like Hounsfield units."""
    low = float(values.min())
    if low >= 0:
        log.warning(
            "%s: every CT value is >= 0 (min %g); air should be about -1000 HU. The CT may lack "
            "its rescale intercept (often -1024). Used as is.", path, low)
    elif float(np.percentile(values, 99)) < 100:
        log.warning(
            "%s: 99th percentile of the CT is below 100 HU: no bone found; check the units. "
            "Used as is.", path)
