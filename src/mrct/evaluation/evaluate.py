"""Evaluate one model's test predictions against the ground-truth slices of the manifest.

Separate from :mod:`mrct.evaluation.metrics` (which only knows arrays) so the metric definitions can be
tested without files, and this file only deals with finding, reading and pairing PNGs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.evaluation.hu_metrics import HU_METRICS, hu_metrics
from mrct.evaluation.metrics import IMAGE_METRICS, MASKED_METRICS, image_metrics, vif_batch_masked
from mrct.io.png import read_gray_png
from mrct.slices.geometry import as_uint8, from_levels
from mrct.slices.manifest import DIRECTIONS, split_rows

log = logging.getLogger(__name__)

SLICE_KEYS = ["model", "patient", "slice", "direction"]


def prediction_path(pred_root: str | Path, direction: str, ground_truth_png: str) -> Path:
    """Predictions carry the file name of the ground-truth PNG they are compared with."""
    return Path(pred_root) / direction / Path(ground_truth_png).name


def evaluate_model(model: str, manifest: pd.DataFrame, pred_root: str | Path, hu_clip: Sequence[float]) -> pd.DataFrame:
    """Per-slice metrics of one model, both directions; ``pred_root`` holds ``mr2ct/`` and ``ct2mr/``.

    Every 8-bit metric comes twice: over the whole slice (as the study) and inside the slice's head
    mask (``*_masked``, see :mod:`mrct.evaluation.metrics`); both directions use the same mask (MR is
    on the CT grid).

    The 8-bit metrics read 8-bit renderings of the stored slices over their own stored window
    (``as_uint8``: CT [ct_lo_hu, ct_hi_hu], MR [mr_lo, mr_hi]; docs/study.md states them), exactly
    what the 8-bit slices of earlier runs held, so their values stay comparable. The HU columns (MR->CT) are per slice, from
    the stored levels mapped back to HU with the manifest's CT window (0.06 HU per level for
    16-bit slices): they cannot see beyond that window. The whole-volume HU metrics in float HU are
    :mod:`mrct.evaluation.volumes`'s.
    """
    rows = split_rows(manifest, "test")
    masks = [read_gray_png(row.mask_png) > 127 for row in rows.itertuples(index=False)]
    records = []
    for direction in DIRECTIONS:
        refs, preds, levels = [], [], []
        for row, mask in zip(rows.itertuples(index=False), masks, strict=True):
            target_png = getattr(row, DIRECTIONS[direction].target_column)
            ref = read_gray_png(target_png)
            if mask.shape != ref.shape:
                raise ValueError(f"{row.mask_png}: expected the shape {ref.shape} of its slice, got {mask.shape}")
            pred_file = prediction_path(pred_root, direction, target_png)
            pred = read_gray_png(pred_file)
            if pred.shape != ref.shape:
                raise ValueError(f"{pred_file}: expected shape {ref.shape} of the ground truth, got {pred.shape}")
            refs.append(as_uint8(ref))
            preds.append(as_uint8(pred))
            levels.append((pred, ref))
        vifs, vifs_masked = vif_batch_masked(np.stack(preds), np.stack(refs), np.stack(masks))
        for row, pred, ref, (pred_levels, ref_levels), mask, vif_value, vif_masked in zip(
            rows.itertuples(index=False), preds, refs, levels, masks, vifs, vifs_masked, strict=True
        ):
            record = {"model": model, "patient": row.patient, "slice": int(row.slice), "direction": direction}
            record.update(image_metrics(pred, ref, mask, vif_value=vif_value, vif_masked_value=vif_masked))
            if direction == "mr2ct":
                pred_hu = from_levels(pred_levels, row.ct_lo_hu, row.ct_hi_hu)
                ref_hu = from_levels(ref_levels, row.ct_lo_hu, row.ct_hi_hu)
                record.update(hu_metrics(pred_hu, ref_hu, mask, hu_clip))
            else:
                record.update(dict.fromkeys(HU_METRICS, np.nan))
            records.append(record)
        log.info("%s %s: %d slices evaluated", model, direction, len(preds))
    return pd.DataFrame.from_records(records, columns=[*SLICE_KEYS, *IMAGE_METRICS, *MASKED_METRICS, *HU_METRICS])


def evaluate_runs(model: str, runs: Sequence[tuple[pd.DataFrame, str | Path, int, int]],
                  hu_clip: Sequence[float]) -> pd.DataFrame:
    """The model's one per-slice table over every run of the sweep (:mod:`mrct.slices.sweep`).

    ``runs`` lists (the run's manifest, its prediction root, fold, replicate); each test slice
    appears once per run that tested it, with the run's ``fold``, ``replicate`` and
    ``n_train_patients`` (the training patients of its manifest).
    """
    frames = []
    for manifest, pred_root, fold, replicate in runs:
        n_train = int(manifest.loc[manifest["split"] == "train", "patient"].nunique())
        frame = evaluate_model(model, manifest, pred_root, hu_clip)
        frame.insert(4, "fold", int(fold))
        frame.insert(5, "replicate", int(replicate))
        frame.insert(6, "n_train_patients", n_train)
        frames.append(frame)
    if not frames:
        raise ValueError(f"metrics of {model!r}: expected at least one run, got none")
    return pd.concat(frames, ignore_index=True)
