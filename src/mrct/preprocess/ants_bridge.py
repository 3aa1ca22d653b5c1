"""SimpleITK <-> ANTsPy conversion.

Both libraries use ITK's physical space (LPS), so origin, spacing and direction carry over
unchanged; only the array axis order differs (SimpleITK arrays are z,y,x, ANTs arrays x,y,z).
"""

from __future__ import annotations

import ants
import numpy as np
import SimpleITK as sitk


def to_ants(image: sitk.Image) -> ants.ANTsImage:
    array = sitk.GetArrayFromImage(image).astype(np.float32).transpose(2, 1, 0)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    return ants.from_numpy(array, origin=list(image.GetOrigin()), spacing=list(image.GetSpacing()), direction=direction)


def to_sitk(image: ants.ANTsImage, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(image.numpy().transpose(2, 1, 0).astype(np.float32))
    out.CopyInformation(reference)
    return out
