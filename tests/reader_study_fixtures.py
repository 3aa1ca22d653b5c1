"""A tiny finished evaluation (manifest, predictions, model selection) to build reader studies from.

Shared by the reader-study tests. Predictions are written as a model might: ``smooth`` makes them
blurrier than the ground truth (so they compress better), ``leaky_encoding`` saves them with other
encoder settings and a text chunk, as a careless kit would pass on.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, PngImagePlugin
from scipy import ndimage
from tiny_slices import _brain_images, _slice_images, write_tiny_dataset

MODELS = ("scratch", "skimage_photos")


def write_finished_evaluation(root: Path, n_test_patients: int = 2, n_slices: int = 6, size: int = 16,
                              content: str = "smooth", leaky_encoding: bool = True, seed: int = 0,
                              bits: int = 8) -> dict:
    """Write everything ``build_reader_study`` reads under ``root``; return its arguments.

    ``content`` of the predictions: ``smooth`` (blurred ground truth), ``noisy`` (ground truth
    plus noise) or ``resampled`` (a new slice from the same generator as the ground truth: the same
    distribution of pixels as the real images, so only the encoding could tell them apart).
    ``bits=16``: the 16-bit head of ``tiny_slices`` (HU with white and grey matter), predictions in
    16 bits as the pipeline writes them.
    """
    patients = {"p01": "train", **{f"t{i:02d}": "test" for i in range(n_test_patients)}}
    manifest_path = write_tiny_dataset(root, patients=patients, n_slices=n_slices, size=size, seed=seed, bits=bits)
    top, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    manifest = pd.read_csv(manifest_path)
    rng = np.random.default_rng(seed + 1)
    dirs = []
    for model in MODELS:
        for direction, column in (("mr2ct", "ct_png"), ("ct2mr", "mr_png")):
            out = root / "results/predictions" / model / direction
            out.mkdir(parents=True, exist_ok=True)
            dirs.append(out)
            test_files = list(manifest.loc[manifest["split"] == "test", column])
            for rel in test_files:
                if content == "resampled":
                    made = _slice_images(rng, size) if bits == 8 else _brain_images(rng, size)
                    pixels = made[0 if direction == "ct2mr" else 1].astype(float)
                else:
                    pixels = np.asarray(Image.open(root / rel), dtype=float)
                if content == "smooth":
                    pixels = ndimage.gaussian_filter(pixels, 1.0)
                elif content == "noisy":
                    pixels = pixels + rng.normal(0, 2 * top / 255, pixels.shape)
                image = Image.fromarray(np.clip(np.rint(pixels), 0, top).astype(dtype))
                if leaky_encoding:
                    info = PngImagePlugin.PngInfo()
                    info.add_text("Software", f"mrct predict {model}")
                    image = image.convert("RGB") if bits == 8 else image  # Pillow has no 16-bit RGB
                    image.save(out / Path(rel).name, pnginfo=info, compress_level=1)
                else:
                    image.save(out / Path(rel).name)
    selection = write_selection_table(root, "skimage_photos")
    return {"manifest_path": manifest_path, "selection": selection, "prediction_dirs": dirs}


def write_selection_table(root: Path, model: str, patients: str = "") -> Path:
    """``results/reader_study/selection.csv`` naming ``model`` for both directions, chosen on ``patients``."""
    path = root / "results/reader_study/selection.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"direction": ["mr2ct", "ct2mr"], "model": [model, model], "metric": ["psnr_masked"] * 2,
                  "value": [22.0, 21.0], "patients": [patients, patients]}).to_csv(path, index=False)
    return path


def page_images(page: str) -> list[dict]:
    """The images of a questionnaire as its script sees them: [{"id", "src"}, ...] in order."""
    match = re.search(r'<script id="study-data" type="application/json">(.*?)</script>', page, re.DOTALL)
    assert match, "questionnaire: no study data found"
    return json.loads(match.group(1))["images"]


def decode_uri(uri: str) -> np.ndarray:
    """Pixels of a data: URI PNG, decoded by Pillow (independent of the kit's encoder)."""
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):]))) as image:
        assert image.mode == "L"
        return np.asarray(image)


def shown_pixels(path: str | Path, direction: str, manifest: pd.DataFrame, patient: str, slice_: int,
                 ct_window_hu: tuple[float, float] = (0.0, 80.0)) -> np.ndarray:
    """What the page must show for a study image, computed here from the file (not by the kit).

    The stored level goes back to physical units through the manifest row's window and the PNG's
    bit depth; CT (mr2ct images) is then shown in ``ct_window_hu``, MR in its stored window.
    """
    row = manifest[(manifest["patient"] == patient) & (manifest["slice"] == slice_)].iloc[0]
    with Image.open(path) as image:
        sixteen = image.mode.startswith("I")
        levels = np.asarray(image if sixteen or image.mode == "L" else image.convert("L"), dtype=float)
    top = 65535.0 if sixteen else 255.0
    ct = direction == "mr2ct"
    lo, hi = (row["ct_lo_hu"], row["ct_hi_hu"]) if ct else (row["mr_lo"], row["mr_hi"])
    values = lo + levels / top * (hi - lo)
    shown_lo, shown_hi = ct_window_hu if ct else (lo, hi)
    return np.clip(np.rint((values - shown_lo) / (shown_hi - shown_lo) * 255), 0, 255).astype(np.uint8)
