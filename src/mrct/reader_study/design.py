"""The study's design: the slices, their order and their opaque ids.

Every drawn test slice is shown twice, once as ground truth and once as the model's output, so
that the two ratings of one slice can be paired (the study's Table VI). The sequence is cut in
two halves: every slice appears once in each half, and for exactly half of the slices of each
direction (rounded down) the ground truth comes first, so neither the half nor the position of an
image says whether it is real. Within the second half, showings are placed at random subject to a
minimum gap from the first showing, so a reader does not see the same slice twice in a row.

Random draws (slices, first/second, order, ids) all come from one generator seeded by the config
seed, so the same config gives the same questionnaire and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Columns of key.csv (interface: the analysis reads them).
KEY_COLUMNS = ["image_id", "truth", "direction", "model", "patient", "slice"]
ID_BYTES = 6  # 12 hex characters: collisions are re-drawn, and 2**48 leaves nothing to guess


@dataclass(frozen=True)
class ReaderStudySettings:
    """The ``reader_study`` config section."""

    images_per_modality: int
    metric: str
    model: str | None = None
    min_gap: int | None = None
    #: CT shown from black at the first to white at the second HU value (config.yaml: W80/L40).
    ct_window_hu: tuple[float, float] = (0.0, 80.0)

    def __post_init__(self) -> None:
        if self.images_per_modality < 2 or self.images_per_modality % 2:
            raise ValueError(
                f"reader_study.images_per_modality: expected an even number >= 2 (half ground truth, "
                f"half synthetic), got {self.images_per_modality}"
            )
        low, high = self.ct_window_hu
        if not high > low:
            raise ValueError(f"reader_study.ct_window_hu: expected low < high, got {low} .. {high}")

    @property
    def slices_per_direction(self) -> int:
        return self.images_per_modality // 2


def draw_slices(candidates: pd.DataFrame, n: int, rng: np.random.Generator, direction: str) -> pd.DataFrame:
    """``n`` distinct test slices (rows of ``candidates``), drawn without replacement."""
    if len(candidates) < n:
        raise ValueError(
            f"reader study, {direction}: expected at least {n} test slices for "
            f"{2 * n} images per modality, got {len(candidates)}; lower reader_study.images_per_modality"
        )
    chosen = rng.choice(len(candidates), size=n, replace=False)
    return candidates.iloc[np.sort(chosen)].reset_index(drop=True)


def order_showings(n_pairs: int, min_gap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first and second showing of each pair in a sequence of ``2 * n_pairs``.

    First showings fill the first half in random order. Second showings are placed in the second
    half, most constrained pair first (the one shown last in the first half), each uniformly among
    the free positions at least ``min_gap`` after its first showing. At every step exactly
    ``n_pairs - min_gap + 1`` positions qualify, so the draw never fails when
    ``1 <= min_gap <= n_pairs``.
    """
    if not 1 <= min_gap <= n_pairs:
        raise ValueError(f"reader_study.min_gap: expected 1..{n_pairs} for {n_pairs} slices, got {min_gap}")
    first = rng.permutation(n_pairs)
    second = np.empty(n_pairs, dtype=int)
    free = np.ones(n_pairs, dtype=bool)  # free positions of the second half
    for pair in np.argsort(-first, kind="stable"):
        lowest = max(0, min_gap - (n_pairs - first[pair]))
        options = np.flatnonzero(free[lowest:]) + lowest
        second[pair] = rng.choice(options)
        free[second[pair]] = False
    return first, second + n_pairs


def default_min_gap(n_pairs: int) -> int:
    """Half of a half: pairs are at least a quarter of the questionnaire apart."""
    return max(1, n_pairs // 2)


def _opaque_ids(n: int, rng: np.random.Generator) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        token = rng.bytes(ID_BYTES).hex()
        if token not in seen:
            seen.add(token)
            ids.append(token)
    return ids


def draw_study(slices: Mapping[str, pd.DataFrame], models: Mapping[str, str], settings: ReaderStudySettings,
               seed: int) -> pd.DataFrame:
    """The study in showing order: the key's columns plus ``png`` (the image to show).

    ``slices[direction]`` lists the test slices with columns ``patient``, ``slice``,
    ``real_png`` (ground truth) and ``synthetic_png`` (the model's output for that slice).
    """
    rng = np.random.default_rng(seed)
    n = settings.slices_per_direction
    pairs = []
    for direction in sorted(slices):
        drawn = draw_slices(slices[direction], n, rng, direction)
        real_first = np.zeros(n, dtype=bool)
        real_first[rng.choice(n, size=n // 2, replace=False)] = True
        if n % 2:  # the odd one out goes either way
            real_first[np.flatnonzero(~real_first)[rng.integers(n - n // 2)]] = bool(rng.integers(2))
        for row, first_is_real in zip(drawn.itertuples(index=False), real_first, strict=True):
            pairs.append((direction, row, bool(first_is_real)))
    min_gap = settings.min_gap if settings.min_gap is not None else default_min_gap(len(pairs))
    first, second = order_showings(len(pairs), min_gap, rng)
    records: list[dict | None] = [None] * (2 * len(pairs))
    for (direction, row, first_is_real), p1, p2 in zip(pairs, first, second, strict=True):
        for position, real in ((p1, first_is_real), (p2, not first_is_real)):
            records[position] = {
                "truth": "real" if real else "synthetic", "direction": direction, "model": models[direction],
                "patient": row.patient, "slice": int(row.slice),
                "png": str(row.real_png if real else row.synthetic_png),
            }
    study = pd.DataFrame.from_records(records)
    study.insert(0, "image_id", _opaque_ids(len(study), rng))
    return study
