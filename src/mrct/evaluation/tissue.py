"""Tissue overlap of a synthetic CT with the real CT: air, soft tissue and bone by HU thresholds.

A synthetic CT with a good MAE can still miss the skull's inner table or put air in the sinuses;
the HU metrics average such errors away. Here both volumes are split into three classes inside
the body mask by stated thresholds (``evaluate.tissue_hu``):

* air: HU < ``air_max`` (sinuses, airways, mastoid cells; outside the body mask nothing counts),
* bone: HU >= ``bone_min``,
* soft tissue: everything in between,

and each class of the synthetic CT is compared with the same class of the CT by

* **Dice** 2|A n B| / (|A| + |B|);
* **HD95** in mm, the 95th-percentile symmetric Hausdorff distance between the class surfaces,
  in the manner of MONAI's ``HausdorffDistanceMetric(percentile=95)`` (which SynthRAD2025 uses on
  its TotalSegmentator labels): the surface of a class is its voxels that have a
  face-neighbour outside it (a voxel on the array's face counts as surface); the distances from
  every surface voxel of A to the nearest surface voxel of B, in mm with the voxel spacing
  (``scipy.ndimage.distance_transform_edt``), and from B to A; HD95 is the larger of the two
  95th percentiles. SimpleITK's ``HausdorffDistanceImageFilter`` would give the maximum, which
  one stray voxel decides.

A class absent from both volumes has no Dice and no HD95 (NaN); a class absent from one only has
Dice 0 and no HD95 (there is no surface to measure to). Anatomical labels (TotalSegmentator, as
SynthRAD2025 scores) are not computed here: neither it nor its weights are part of the pipeline's
environments, and they cannot be fetched offline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

#: Tissue classes, in the order of the columns.
TISSUE_CLASSES = ("air", "soft", "bone")
#: Column names: dice_{class}, then hd95_{class}_mm.
TISSUE_METRICS = [f"dice_{c}" for c in TISSUE_CLASSES] + [f"hd95_{c}_mm" for c in TISSUE_CLASSES]
#: HD95 is the 95th percentile of the surface distances.
PERCENTILE = 95.0


def check_thresholds(tissue_hu: Mapping[str, float]) -> tuple[float, float]:
    """``air_max`` and ``bone_min`` of ``evaluate.tissue_hu``; air must lie below bone."""
    missing = [k for k in ("air_max", "bone_min") if k not in tissue_hu]
    if missing:
        raise ValueError(f"evaluate.tissue_hu: expected keys air_max and bone_min, missing {missing}")
    air_max, bone_min = float(tissue_hu["air_max"]), float(tissue_hu["bone_min"])
    if not air_max < bone_min:
        raise ValueError(f"evaluate.tissue_hu: expected air_max < bone_min, got {air_max} and {bone_min}")
    return air_max, bone_min


def tissue_classes(hu: np.ndarray, mask: np.ndarray, tissue_hu: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Boolean volume of each class inside ``mask``."""
    air_max, bone_min = check_thresholds(tissue_hu)
    hu, mask = np.asarray(hu, np.float64), np.asarray(mask) > 0
    return {
        "air": mask & (hu < air_max),
        "soft": mask & (hu >= air_max) & (hu < bone_min),
        "bone": mask & (hu >= bone_min),
    }


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """2|A n B| / (|A| + |B|); NaN when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return math.nan if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def surface(region: np.ndarray) -> np.ndarray:
    """Voxels of ``region`` with a face-neighbour outside it (outside the array counts as outside)."""
    return region & ~ndimage.binary_erosion(region, border_value=0)


def hd95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the surfaces of ``a`` and ``b`` (units of
    ``spacing``, one value per array axis); NaN when either is empty.

    The distance transforms run on the bounding box of both surfaces only: every nearest surface
    voxel lies inside it, so the distances are those of the whole array.
    """
    if a.shape != b.shape or len(spacing) != a.ndim:
        raise ValueError(f"expected two volumes of one shape and one spacing per axis, got {a.shape}, {b.shape}, "
                         f"spacing {tuple(spacing)}")
    if not a.any() or not b.any():
        return math.nan
    sa, sb = surface(a), surface(b)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(sa | sb))
    sa, sb = sa[box], sb[box]
    to_b = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    to_a = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return float(max(np.percentile(to_b, PERCENTILE), np.percentile(to_a, PERCENTILE)))


def tissue_overlap(sct_hu: np.ndarray, ct_hu: np.ndarray, mask: np.ndarray, spacing: Sequence[float],
                   tissue_hu: Mapping[str, float]) -> dict[str, float]:
    """Dice and HD95 (mm) of each tissue class of the synthetic CT against the CT inside ``mask``.

    ``spacing`` is the voxel size in mm along the array's axes (for a SimpleITK image read with
    ``GetArrayFromImage``: ``GetSpacing()`` reversed).
    """
    if np.shape(sct_hu) != np.shape(ct_hu) or np.shape(mask) != np.shape(ct_hu):
        raise ValueError(f"expected sCT, CT and mask of one shape, got {np.shape(sct_hu)}, {np.shape(ct_hu)}, "
                         f"{np.shape(mask)}")
    mask = np.asarray(mask) > 0
    if not mask.any():
        raise ValueError("tissue overlap: the body mask is empty")
    # Every class lies inside the mask: its bounding box grown by one voxel (the surfaces see the
    # same outside) gives the values of the whole array in a fraction of the time.
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(mask))
    synthetic = tissue_classes(np.asarray(sct_hu)[box], mask[box], tissue_hu)
    real = tissue_classes(np.asarray(ct_hu)[box], mask[box], tissue_hu)
    values = {f"dice_{c}": dice(synthetic[c], real[c]) for c in TISSUE_CLASSES}
    values.update({f"hd95_{c}_mm": hd95(synthetic[c], real[c], spacing) for c in TISSUE_CLASSES})
    return values
