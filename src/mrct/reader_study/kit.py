"""``rule reader_study``: choose the model per direction, draw the images, write page and key.

The page (``questionnaire.html``) goes to the readers; the key (``key.csv``) stays with the
investigator and is what the analysis joins the exported answers with. Every image is shown in
its modality's reading window (``windows``: CT in a brain window from HU, MR as stored).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.io.atomic import write_text_atomic
from mrct.io.png import read_gray_png
from mrct.reader_study.design import KEY_COLUMNS, ReaderStudySettings, draw_study
from mrct.reader_study.encoding import data_uri, encode_gray_png
from mrct.reader_study.page import render_questionnaire
from mrct.reader_study.selection import read_selection
from mrct.reader_study.windows import render_for_readers
from mrct.slices.manifest import DIRECTIONS, read_manifest, split_rows

log = logging.getLogger(__name__)


def settings_from_config(section: Mapping) -> ReaderStudySettings:
    """The ``reader_study`` config section (a rule param) as settings."""
    return ReaderStudySettings(
        images_per_modality=int(section["images_per_modality"]),
        metric=str(section["metric"]),
        model=section.get("model"),
        min_gap=section.get("min_gap"),
        ct_window_hu=tuple(float(v) for v in section["ct_window_hu"]),
    )


def prediction_dirs_by_key(dirs: Iterable[str | Path]) -> dict[tuple[str, str], Path]:
    """``results/predictions/{model}/{direction}`` folders keyed by (model, direction)."""
    return {(Path(d).parent.name, Path(d).name): Path(d) for d in dirs}


def candidate_slices(manifest: pd.DataFrame, direction: str, prediction_dir: Path,
                     excluded: Iterable[str] = ()) -> pd.DataFrame:
    """Test slices with their ground truth and the model's output (same file name), less the
    ``excluded`` patients (those the model was chosen on)."""
    rows = split_rows(manifest, "test")
    rows = rows[~rows["patient"].astype(str).isin(set(excluded))]
    real = rows[DIRECTIONS[direction].target_column].astype(str)
    synthetic = [prediction_dir / Path(p).name for p in real]
    missing = [str(p) for p in synthetic if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{prediction_dir}: expected a prediction per test slice, missing {missing[:3]}"
                                f"{' ...' if len(missing) > 3 else ''} ({len(missing)} in all)")
    return pd.DataFrame({"patient": rows["patient"], "slice": rows["slice"], "real_png": real,
                         "synthetic_png": [str(p) for p in synthetic]})


def study_pixels(study: pd.DataFrame, manifest: pd.DataFrame, ct_window_hu: tuple[float, float]) -> list[np.ndarray]:
    """The 8-bit image of every study row, ground truth and synthetic alike, in its reading window.

    Both images of a slice take their windows from that slice's manifest row (the prediction's
    levels are on the ground truth's scale) and go through ``render_for_readers``.
    """
    rows = manifest.set_index(["patient", "slice"])
    images = []
    for item in study.itertuples(index=False):
        row = rows.loc[(item.patient, item.slice)]
        levels = read_gray_png(item.png)
        images.append(render_for_readers(levels, row, DIRECTIONS[item.direction].target, ct_window_hu))
    return images


def encode_study_images(images: Iterable[np.ndarray], names: Iterable[str]) -> tuple[list[str], tuple[int, int]]:
    """Every image re-encoded from its pixels (see ``encoding``); all must share one size."""
    uris: list[str] = []
    shape: tuple[int, int] | None = None
    first = None
    for pixels, path in zip(images, names, strict=True):
        if shape is None:
            shape, first = pixels.shape, path
        elif pixels.shape != shape:
            raise ValueError(f"{path}: expected every reader-study image to be {shape} like {first}, "
                             f"got {pixels.shape}")
        uris.append(data_uri(encode_gray_png(pixels)))
    if shape is None:
        raise ValueError("reader study: expected at least one image, got none")
    return uris, shape


def build_reader_study(manifest_path: str | Path, selection: str | Path,
                       prediction_dirs: Iterable[str | Path], settings: ReaderStudySettings, seed: int,
                       questionnaire: str | Path, key: str | Path) -> pd.DataFrame:
    """Write the questionnaire and its key; return the study (key columns and ``png``) in order.

    ``selection`` is ``results/reader_study/selection.csv`` (:mod:`mrct.reader_study.selection`):
    the model per direction, and the patients it was chosen on, whose slices are never shown.
    """
    manifest = read_manifest(manifest_path)
    models, chosen_on = read_selection(selection)
    dirs = prediction_dirs_by_key(prediction_dirs)
    slices = {}
    for direction, model in models.items():
        if (model, direction) not in dirs:
            raise ValueError(f"reader study: expected predictions of {model!r} for {direction} among "
                             f"{sorted(str(d) for d in dirs.values())}")
        slices[direction] = candidate_slices(manifest, direction, dirs[model, direction], chosen_on)
    study = draw_study(slices, models, settings, seed)
    images = study_pixels(study, manifest, settings.ct_window_hu)
    uris, (height, width) = encode_study_images(images, study["png"])
    page = render_questionnaire(list(study["image_id"]), uris, width=width, height=height)
    write_text_atomic(questionnaire, page)
    write_text_atomic(key, study[KEY_COLUMNS].to_csv(index=False))
    counts = study.groupby(["direction", "truth"]).size().to_dict()
    log.info("reader study: %d images %s, %.1f MB page -> %s", len(study), counts,
             len(page.encode("utf-8")) / 1e6, questionnaire)
    return study

