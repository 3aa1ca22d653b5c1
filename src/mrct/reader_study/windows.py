"""What the readers see: every image rendered to 8 bits in the window a radiologist reads it in.

CT: the stored levels back to HU (the manifest's ``ct_lo_hu``, ``ct_hi_hu`` and the PNG's bit
depth: 0.06 HU per level for 16-bit slices), then the brain window ``reader_study.ct_window_hu``
(default W80/L40, i.e. 0 to 80 HU) to 0..255, so white matter (about 25 HU) and grey matter
(about 38 HU) are about 40 gray levels apart. In the stored window [-1024, 3000] HU they were one
gray level apart and a brain was one flat gray. MR: its stored window (``mr_lo``, ``mr_hi``: the
head's 0.5 and 99.5 percentiles) to 0..255, as the 8-bit slices always showed it.

A slice's ground truth and the model's image of it go through one function with the windows of one
manifest row, so nothing in the rendering differs between real and synthetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mrct.slices.geometry import from_levels, to_uint8


def stored_window(row: pd.Series, modality: str) -> tuple[float, float]:
    """The physical values of the lowest and highest stored level of a ``modality`` slice of ``row``."""
    if modality == "ct":
        return float(row["ct_lo_hu"]), float(row["ct_hi_hu"])
    if modality == "mr":
        return float(row["mr_lo"]), float(row["mr_hi"])
    raise ValueError(f"modality must be 'mr' or 'ct', got {modality!r}")


def shown_window(row: pd.Series, modality: str, ct_window_hu: Sequence[float]) -> tuple[float, float]:
    """The physical values shown as black and white: the brain window for CT, the stored one for MR."""
    if modality == "ct":
        low, high = (float(v) for v in ct_window_hu)
        if not high > low:
            raise ValueError(f"reader_study.ct_window_hu: expected low < high, got {low} .. {high}")
        return low, high
    return stored_window(row, modality)


def render_for_readers(levels: np.ndarray, row: pd.Series, modality: str, ct_window_hu: Sequence[float]) -> np.ndarray:
    """Stored levels of a ``modality`` slice of manifest ``row`` as the 8-bit image the readers see."""
    physical = from_levels(levels, *stored_window(row, modality))
    return to_uint8(physical, *shown_window(row, modality, ct_window_hu))
