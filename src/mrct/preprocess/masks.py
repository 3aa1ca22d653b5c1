"""Head masks: where the patient is, as opposed to air, couch and noise.

Bias correction fits its field inside the head only; slicing keeps slices with enough head;
HU metrics are computed inside the body mask (:func:`body_mask`). Thresholds come from the data (Otsu for MR, whose
units are arbitrary) or from physics (HU for CT), never from the demo's numbers.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def _clean(binary: np.ndarray) -> np.ndarray:
    """Largest connected component, holes filled in 3-D and then slice by slice (sinuses, skull)."""
    labels, count = ndimage.label(binary)
    if count == 0:
        return binary.astype(np.uint8)
    sizes = ndimage.sum_labels(binary, labels, index=range(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    largest = ndimage.binary_closing(largest, structure=np.ones((3, 3, 3)), iterations=2, border_value=0) | largest
    filled = ndimage.binary_fill_holes(largest)
    for z in range(filled.shape[0]):
        filled[z] = ndimage.binary_fill_holes(filled[z])
    return filled.astype(np.uint8)


def _as_image(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def ct_head_mask(ct: sitk.Image, threshold_hu: float = -500.0) -> sitk.Image:
    """Voxels denser than ``threshold_hu`` (air is -1000), largest component, holes filled."""
    array = sitk.GetArrayFromImage(ct)
    mask = _clean(array > threshold_hu)
    if not mask.any():
        raise ValueError(f"CT has no voxel above {threshold_hu} HU: is it in Hounsfield units?")
    return _as_image(mask, ct)


def mr_head_mask(mr: sitk.Image) -> sitk.Image:
    """Otsu threshold of the MR (units are arbitrary), largest component, holes filled.

    Otsu is computed on a lightly smoothed image so that noise in the background does not split
    the head, and on log intensities so that a strong bias field does not drop dark regions.
    """
    array = sitk.GetArrayFromImage(mr).astype(np.float64)
    smooth = ndimage.gaussian_filter(np.log1p(np.clip(array, 0, None)), 1.0)
    image = sitk.GetImageFromArray(smooth)
    threshold = sitk.OtsuThresholdImageFilter()
    threshold.SetInsideValue(0)
    threshold.SetOutsideValue(1)
    threshold.Execute(image)
    mask = _clean(smooth > threshold.GetThreshold())
    if not mask.any():
        raise ValueError("MR head mask is empty: the image holds no foreground")
    return _as_image(mask, mr)


def body_mask(ct: sitk.Image, threshold_hu: float = -500.0, evaluation_mask: sitk.Image | None = None) -> sitk.Image:
    """The mask of every HU metric, on the CT grid (results/preprocessed/{patient}/body_mask.nii.gz).

    With ``evaluation_mask`` (SynthRAD2023's own ``mask.nii.gz``, the challenge's evaluation mask)
    that mask is taken as is, resampled onto the CT grid (nearest neighbour, physical space: it is
    on the CT's grid in the challenge data, so this is a copy up to voxel order). Otherwise the body
    outline of the CT: voxels above ``threshold_hu``, the largest component, holes filled in 3-D and
    slice by slice, so air inside the outline (sinuses, a skull cut open by the field of view)
    counts as body, as it does for the challenge's masks.
    """
    if evaluation_mask is None:
        return ct_head_mask(ct, threshold_hu)
    if evaluation_mask.GetDimension() != 3:
        raise ValueError(f"evaluation mask: expected a 3-D image, got {evaluation_mask.GetDimension()}-D")
    array = (sitk.GetArrayFromImage(evaluation_mask) > 0).astype(np.uint8)
    source = sitk.GetImageFromArray(array)
    source.CopyInformation(evaluation_mask)
    on_grid = sitk.Resample(source, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(on_grid) > 0
    if not mask.any():
        raise ValueError("evaluation mask: no voxel of it lies on the CT grid (expected the patient's mask.nii.gz)")
    return _as_image(mask, ct)
