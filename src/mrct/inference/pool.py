"""The out-of-fold pool of predictions: each tested patient's slices from the run that tested it.

With several runs per model (:mod:`mrct.slices.sweep`), the stages that show or compare one set of
predictions per model (figures, FID, the reader study) read the pool in the short path
``results/predictions/{model}/{direction}/``: the predictions of replicate 0 on the full training
set, one fold after the other. The folds' test patients are disjoint, so no file name (that of
its ground-truth PNG) can come from two runs; a clash is an error rather than an overwrite.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def pool_predictions(run_dirs: Sequence[str | Path], target: str | Path) -> int:
    """Copy the PNGs of every run's prediction folder into ``target``; return how many."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.pooling")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    origin: dict[str, Path] = {}
    for folder in map(Path, run_dirs):
        for png in sorted(folder.glob("*.png")):
            if png.name in origin:
                raise ValueError(f"{png}: the same slice was predicted by {origin[png.name]} too; the folds' test "
                                 "patients must be disjoint")
            origin[png.name] = folder
            shutil.copy2(png, staging / png.name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # the folder appears whole or not at all
    log.info("pooled %d predictions of %d runs into %s", len(origin), len(run_dirs), target)
    return len(origin)
