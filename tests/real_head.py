"""A real (single-subject, not averaged) head MR at 1 mm, from a PyPI package, with a known field.

pycortex (the test extra in pyproject.toml) installs its sample subject S1 into
``<prefix>/share/pycortex/db/S1``; ``anatomicals/raw.nii.gz`` is that subject's T1-weighted head
MR as FreeSurfer conformed it (256^3, 1 mm, 8 bit), not bias-corrected. The demo's template
(nilearn's MNI152) is an average of 152 heads and far smoother than any scan; bias correction
has to be shown on a real one too.

The known field and the noise follow the demo generator (``mrct.sources.demo``): its smooth
random multiplicative field (max/min = 2 over the field of view) and Rician noise at 2 % of
bright tissue. The scan's own small inhomogeneity stays in the image and counts as error, for
N3 and N4 alike.

Brain proxy (no brain extraction is available offline): head voxels at least 20 mm inside the
head surface and above the head's centroid. That region is the cerebrum with little else
(checked on a figure); it leaves out scalp, skull, face and neck, which a brain mask would too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mrct.preprocess.masks import mr_head_mask
from mrct.sources import demo

PACKAGE = "pycortex"
FILE = "share/pycortex/db/S1/anatomicals/raw.nii.gz"
BRAIN_DEPTH_MM = 20.0
NOISE_FRACTION = 0.02


def real_head_path() -> Path:
    """Path of pycortex's S1 T1 head MR, or skip (naming the install) when pycortex is absent."""
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        pytest.skip(f"{PACKAGE} is not installed: pip install -e '.[test]' installs it (it ships a real head MR)")
    for entry in dist.files or []:
        if str(entry).replace("\\", "/").endswith(FILE):
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{PACKAGE} is installed but its sample head MR ({FILE}) is missing")


def load_real_head() -> sitk.Image:
    """The scan in LPS orientation, cropped to the head plus 8 voxels (float32)."""
    image = sitk.DICOMOrient(sitk.ReadImage(str(real_head_path()), sitk.sitkFloat32), "LPS")
    head = sitk.GetArrayFromImage(mr_head_mask(image)) > 0
    where = np.argwhere(head)
    lo = np.maximum(where.min(0) - 8, 0)
    hi = np.minimum(where.max(0) + 9, head.shape)
    size = [int(v) for v in (hi - lo)[::-1]]
    return sitk.RegionOfInterest(image, size, [int(v) for v in lo[::-1]])


def brain_proxy(image: sitk.Image) -> np.ndarray:
    head = sitk.GetArrayFromImage(mr_head_mask(image)) > 0
    spacing = image.GetSpacing()[::-1]
    depth = ndimage.distance_transform_edt(head, sampling=spacing)
    z = np.arange(head.shape[0])[:, None, None]
    # LPS: +z is superior, and the array's first axis is z.
    return (depth >= BRAIN_DEPTH_MM) & (z >= np.argwhere(head)[:, 0].mean())


def biased_real_head(image: sitk.Image, patient: str, seed: int, settings: dict[str, Any],
                     noise_fraction: float = NOISE_FRACTION) -> tuple[sitk.Image, np.ndarray]:
    """The scan times the demo's known field for ``patient``, plus Rician noise; and the field."""
    params = demo.draw_parameters(seed, patient, settings)
    field = demo._bias_field(image, params, settings["bias_amplitude"])
    clean = sitk.GetArrayFromImage(image).astype(np.float64)
    sigma = noise_fraction * np.percentile(clean[brain_proxy(image)], 90)
    rng = np.random.default_rng(seed)
    biased = clean * field
    noisy = np.hypot(biased + rng.normal(0, sigma, biased.shape), rng.normal(0, sigma, biased.shape))
    out = sitk.GetImageFromArray(noisy.astype(np.float32))
    out.CopyInformation(image)
    return out, field
