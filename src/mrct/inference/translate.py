"""``mrct-translate``: a whole MR volume into a synthetic CT in HU (or CT into MR), slice by slice.

The input is read with ``mrct.io.volumes.read_volume`` (any supported format, reoriented to LPS so
that array axis 0 runs over axial slices); each axial slice is mapped to 16-bit levels with the
same intensity window as in training, fitted into the network's square (``to_square``),
translated, brought back to the slice's shape (``from_square``) and from the network's float
output straight to physical units (``from_unit``: no 8-bit or 16-bit step on the way out), and
the volume is written with the input's geometry (origin, spacing, direction, and the file's voxel
order).

Intensity windows, in order of preference: explicit options; the manifest row(s) of
``--patient``; the manifest's common value (CT window); for an MR input without either, its own
percentiles over the foreground (Otsu), which is how the slicing stage scales MR.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from skimage.filters import threshold_otsu

from mrct.inference.predict import translate_images
from mrct.io.volumes import read_volume, write_volume
from mrct.models.trained import generator_metadata, load_trained_generator
from mrct.slices.geometry import from_square, from_unit, to_levels, to_square
from mrct.slices.manifest import read_manifest

log = logging.getLogger(__name__)

SOURCE_MODALITY = {"mr2ct": "mr", "ct2mr": "ct"}


@dataclass(frozen=True)
class Windows:
    """Intensities mapped to the lowest and highest stored level (network -1 and +1): input's, output's."""

    source: tuple[float, float]
    target: tuple[float, float]


def auto_mr_window(values: np.ndarray, percentiles: Sequence[float] = (0.5, 99.5)) -> tuple[float, float]:
    """MR percentiles over the foreground (above Otsu's threshold)."""
    finite = values[np.isfinite(values)]
    foreground = finite[finite > threshold_otsu(finite)]
    lo, hi = np.percentile(foreground, percentiles)
    if not hi > lo:
        raise ValueError(f"MR window from percentiles {list(percentiles)} is empty ({lo} .. {hi})")
    return float(lo), float(hi)


def resolve_windows(direction: str, volume: np.ndarray, manifest: pd.DataFrame | None, patient: str | None,
                    ct_window: Sequence[float] | None, mr_window: Sequence[float] | None) -> Windows:
    rows = None
    if manifest is not None:
        rows = manifest[manifest["patient"] == patient] if patient else manifest
        if rows.empty:
            raise ValueError(f"manifest: no rows for patient {patient!r}")
    if ct_window is None:
        if rows is None:
            raise ValueError("a CT window is needed: give --ct-window LO HI or --manifest")
        ct_window = (float(rows["ct_lo_hu"].median()), float(rows["ct_hi_hu"].median()))
    if mr_window is None:
        if rows is not None and patient:
            mr_window = (float(rows["mr_lo"].median()), float(rows["mr_hi"].median()))
        elif direction == "mr2ct":
            mr_window = auto_mr_window(volume)
        elif rows is not None:
            mr_window = (float(rows["mr_lo"].median()), float(rows["mr_hi"].median()))
        else:
            log.warning("no MR window given: the synthetic MR is written on a 0..255 scale")
            mr_window = (0.0, 255.0)
    ct, mr = tuple(map(float, ct_window)), tuple(map(float, mr_window))
    for name, (lo, hi) in (("CT", ct), ("MR", mr)):
        if not hi > lo:
            raise ValueError(f"{name} window: expected lo < hi, got {lo} .. {hi}")
    return Windows(source=mr, target=ct) if direction == "mr2ct" else Windows(source=ct, target=mr)


def translate_array(generator, volume: np.ndarray, windows: Windows, size: int, batch_size: int = 8,
                    device: str = "cpu") -> np.ndarray:
    """[slices, rows, cols] physical values -> translated physical values, same shape (float32)."""
    lo, hi = windows.source
    squares = np.stack([to_levels(to_square(s, size, order=1, background=lo), lo, hi) for s in volume])
    translated = translate_images(generator, squares, batch_size, device)  # float in [-1, 1]
    t_lo, t_hi = windows.target
    shape = volume.shape[1:]
    out = [from_unit(from_square(p.astype(np.float64), shape, order=1), t_lo, t_hi) for p in translated]
    return np.stack(out).astype(np.float32)


def _file_orientation(path: Path) -> str | None:
    """The voxel order of an image file, to write the result in the same order (None for DICOM)."""
    if path.is_dir():
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    if reader.GetDimension() != 3:
        return None
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reader.GetDirection())


def translate_volume(model_dir: str | Path, direction: str, input_path: str | Path, output_path: str | Path,
                     manifest: str | Path | None = None, patient: str | None = None,
                     ct_window: Sequence[float] | None = None, mr_window: Sequence[float] | None = None,
                     size: int | None = None, batch_size: int = 8, device: str = "cpu") -> Path:
    """Translate ``input_path`` with ``model_dir``/G_{direction}.pth; write ``output_path``."""
    if direction not in SOURCE_MODALITY:
        raise ValueError(f"direction must be one of {sorted(SOURCE_MODALITY)}, got {direction!r}")
    input_path = Path(input_path)
    g_path = Path(model_dir) / f"G_{direction}.pth"
    meta = generator_metadata(g_path)
    generator = load_trained_generator(g_path, device)
    size = size or int(meta.get("image_size", 256))
    image = read_volume(input_path, SOURCE_MODALITY[direction])
    volume = sitk.GetArrayFromImage(image).astype(np.float64)  # [axial slice, row, col] in LPS
    table = read_manifest(manifest) if manifest is not None else None
    windows = resolve_windows(direction, volume, table, patient, ct_window, mr_window)
    log.info("%s %s -> %s with %s (%s); windows %s; %d slices at %d px",
             direction, input_path, output_path, g_path, meta.get("label", meta.get("model")), windows,
             volume.shape[0], size)
    result = sitk.GetImageFromArray(translate_array(generator, volume, windows, size, batch_size, device))
    result.CopyInformation(image)
    orientation = _file_orientation(input_path)
    if orientation:
        result = sitk.DICOMOrient(result, orientation)
    write_volume(result, output_path)
    return Path(output_path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mrct-translate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True, help="folder holding G_mr2ct.pth and G_ct2mr.pth")
    p.add_argument("--direction", required=True, choices=sorted(SOURCE_MODALITY))
    p.add_argument("--input", required=True, help="volume file (NIfTI, NRRD, MHA) or DICOM folder")
    p.add_argument("--output", required=True, help="output volume, e.g. sct.nii.gz")
    p.add_argument("--manifest", help="results/slices/manifest.csv: CT window and MR scaling of training")
    p.add_argument("--patient", help="take the MR scaling of this manifest patient")
    p.add_argument("--ct-window", nargs=2, type=float, metavar=("LO", "HI"), help="HU of the lowest and highest stored level")
    p.add_argument("--mr-window", nargs=2, type=float, metavar=("LO", "HI"), help="MR values of the lowest and highest stored level")
    p.add_argument("--size", type=int, help="square slice size of the network (default: the training size)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    translate_volume(args.model_dir, args.direction, args.input, args.output, args.manifest, args.patient,
                     args.ct_window, args.mr_window, args.size, args.batch_size, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
