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
from tiny_slices import _slice_images, write_tiny_dataset

MODELS = ("scratch", "skimage_photos")


def write_finished_evaluation(root: Path, n_test_patients: int = 2, n_slices: int = 6, size: int = 16,
                              content: str = "smooth", leaky_encoding: bool = True, seed: int = 0) -> dict:
    """Write everything ``build_reader_study`` reads under ``root``; return its arguments.

    ``content`` of the predictions: ``smooth`` (blurred ground truth), ``noisy`` (ground truth
    plus noise) or ``resampled`` (a new slice from the same generator as the ground truth: the same
    distribution of pixels as the real images, so only the encoding could tell them apart).
    """
    patients = {"p01": "train", **{f"t{i:02d}": "test" for i in range(n_test_patients)}}
    manifest_path = write_tiny_dataset(root, patients=patients, n_slices=n_slices, size=size, seed=seed)
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
                    pixels = _slice_images(rng, size)[0 if direction == "ct2mr" else 1].astype(float)
                else:
                    pixels = np.asarray(Image.open(root / rel), dtype=float)
                if content == "smooth":
                    pixels = ndimage.gaussian_filter(pixels, 1.0)
                elif content == "noisy":
                    pixels = pixels + rng.normal(0, 2, pixels.shape)
                image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
                if leaky_encoding:
                    info = PngImagePlugin.PngInfo()
                    info.add_text("Software", f"mrct predict {model}")
                    image.convert("RGB").save(out / Path(rel).name, pnginfo=info, compress_level=1)
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
