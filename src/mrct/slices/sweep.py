"""The runs of a study: every model is trained once per fold, replicate and training-set size.

Fold, replicate and training-set size are the three axes of one sweep (as nnU-Net's folds or
Snakemake's ``Paramspace``). A run is one point of it; :meth:`Sweep.tag` is the one place that
turns a run into the path segment every rule, input function and script uses:

* a study of a single run (``split.folds`` 1, ``train.replicates`` 1, ``split.train_sizes``
  null) keeps the short paths: the tag is empty, e.g. ``results/models/{model}/G_mr2ct.pth``;
* otherwise every run has its own folder below the model's,
  ``results/models/{model}/fold{k}_rep{r}_n{all|N}/G_mr2ct.pth`` (the same segment below
  ``results/predictions/{model}/``, ``results/translations/{model}/`` and
  ``results/slices/runs/``, and in the log paths).

Which patient is tested in which fold is drawn by :func:`mrct.slices.split.patient_folds`; the
runs' training patients and the selection patients here, seeded and independent of input order,
so the split step and the workflow's input functions agree. This module imports nothing heavy:
``rules/common.smk`` uses it while Snakemake builds the DAG.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Fold value of the patients a single split (``split.folds`` 1) never tests: its training patients.
NEVER_TESTED = -1
#: Seeds of replicate r are ``seed + REPLICATE_SEED_STEP * r``: far apart, so that the seeds
#: derived inside a run (image pools: seed + 1, seed + 2) never meet another replicate's.
REPLICATE_SEED_STEP = 1000
#: The tag of a run below the model's folder (a leading slash; empty for the single run).
TAG_PATTERN = r"/fold[0-9]+_rep[0-9]+_n(?:all|[0-9]+)"
_TAG = re.compile(r"^/fold(?P<fold>[0-9]+)_rep(?P<replicate>[0-9]+)_n(?P<n_train>all|[0-9]+)$")


@dataclass(frozen=True, order=True)
class Run:
    """One training run of a model: its fold, its replicate and its training-set size.

    ``n_train`` None means every training patient of the fold (the runs every table reports).
    """

    fold: int
    replicate: int
    n_train: int | None = None

    @property
    def full(self) -> bool:
        return self.n_train is None


@dataclass(frozen=True)
class Sweep:
    """The axes of a study: ``split.folds``, ``train.replicates``, ``split.train_sizes``."""

    folds: int = 1
    replicates: int = 1
    #: Smaller training sets (patients per fold), each a seeded subset of the next larger one;
    #: the full training set always runs besides them.
    train_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.folds < 1:
            raise ValueError(f"split.folds: expected an integer >= 1, got {self.folds}")
        if self.replicates < 1:
            raise ValueError(f"train.replicates: expected an integer >= 1, got {self.replicates}")
        if any(n < 1 for n in self.train_sizes) or len(set(self.train_sizes)) != len(self.train_sizes):
            raise ValueError(f"split.train_sizes: expected distinct integers >= 1, got {list(self.train_sizes)}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Sweep:
        split, train = config.get("split", {}), config.get("train", {})
        return cls(
            folds=int(split.get("folds", 1)),
            replicates=int(train.get("replicates", 1)),
            train_sizes=tuple(sorted(int(n) for n in split.get("train_sizes") or ())),
        )

    @property
    def single(self) -> bool:
        """One run per model: it keeps the short paths (an empty tag)."""
        return self.folds == 1 and self.replicates == 1 and not self.train_sizes

    def runs(self) -> list[Run]:
        """Every run of a model, fold by fold, replicate by replicate, smallest training set first."""
        sizes: list[int | None] = [*self.train_sizes, None]
        return [Run(f, r, n) for f in range(self.folds) for r in range(self.replicates) for n in sizes]

    def full_runs(self) -> list[Run]:
        """The runs on the full training set: the tables, significance and selection read these."""
        return [run for run in self.runs() if run.full]

    def pooled_runs(self) -> list[Run]:
        """Replicate 0 on the full training set, one per fold: the out-of-fold pool of the
        latent space, FID, volumes, figures and the reader study (every tested patient once)."""
        return [run for run in self.full_runs() if run.replicate == 0]

    def tag(self, run: Run) -> str:
        """The path segment of ``run`` (``""`` for the single run of a single-run study)."""
        if self.single:
            return ""
        return f"/fold{run.fold}_rep{run.replicate}_n{'all' if run.n_train is None else run.n_train}"

    def parse(self, tag: str) -> Run:
        """The run of a tag made by :meth:`tag` (the ``run`` wildcard)."""
        if tag == "" and self.single:
            return Run(0, 0, None)
        match = _TAG.match(tag)
        if match is None:
            raise ValueError(f"run tag {tag!r}: expected one like '/fold0_rep0_nall' for this sweep")
        n = match["n_train"]
        run = Run(int(match["fold"]), int(match["replicate"]), None if n == "all" else int(n))
        if run not in self.runs():
            raise ValueError(f"run tag {tag!r}: not a run of this sweep (folds {self.folds}, "
                             f"replicates {self.replicates}, train sizes {list(self.train_sizes)})")
        return run

    @property
    def tag_pattern(self) -> str:
        """The regular expression of the ``run`` wildcard: the empty string for a single run (an
        empty constraint would mean "anything" to Snakemake, hence ``(?:)``), else a tag."""
        return "(?:)" if self.single else TAG_PATTERN

    def seed(self, run: Run, base_seed: int) -> int:
        """The training seed of a run: the config seed for replicate 0, shifted per replicate.

        Folds and training-set sizes of one replicate share the seed (their data differ).
        """
        return int(base_seed) + REPLICATE_SEED_STEP * run.replicate


def training_patients(folds: Mapping[str, int], fold: int, n_train: int | None, seed: int) -> list[str]:
    """The training patients of one run: every patient not tested in ``fold``, or a subset.

    Subsets are nested: the fold's training patients in one seeded order (seed and fold), of which
    a run of size n takes the first n, so a smaller training set lies inside every larger one.
    The test patients of the fold are the same whatever the size.
    """
    pool = sorted(p for p, f in folds.items() if f != fold)
    if n_train is None:
        return pool
    if n_train > len(pool):
        raise ValueError(f"split.train_sizes: {n_train} training patients asked for fold {fold}, "
                         f"which has {len(pool)}")
    order = np.random.default_rng([int(seed), int(fold)]).permutation(len(pool))
    return sorted(pool[i] for i in order[:n_train])


def selection_patients(tested: Iterable[str], n: int, seed: int) -> list[str]:
    """A seeded subset of ``n`` tested patients on which results may be chosen (the reader
    study's model); nothing chosen on them is shown with their results (see reader_study)."""
    ids = sorted(set(tested))
    if n > len(ids):
        raise ValueError(f"reader_study.selection_patients ({n}) is more than the tested patients ({len(ids)})")
    order = np.random.default_rng([int(seed), 1]).permutation(len(ids))
    return sorted(ids[i] for i in order[:n])
