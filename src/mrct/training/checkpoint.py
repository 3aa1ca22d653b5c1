"""Resumable training state: written atomically, on a wall-clock interval, accepted only for
identical settings.

The checkpoint holds what an exact resume needs and nothing more: the trainable parameters of
the four networks (frozen ones are rebuilt from the pretrained file), both optimisers and the
gradient scaler, the two schedulers, the image pools (buffers and random generators), the
python/numpy/torch random states, the log rows of finished epochs, and the position inside the
current epoch (batches done, the loss sums so far, seconds spent). Data order needs no state:
each epoch is seeded from (seed, epoch) (see mrct.training.data), so a resumed epoch skips the
batches already done and sees the rest exactly as an uninterrupted run would.

A zoo-sized checkpoint is about 0.42 GB (4 networks, 2 Adam moments, 2 pools of 50 images);
saving it every epoch wrote ~84 GB per study-scale model. Saving every ``checkpoint_minutes``
of wall-clock time bounds the bytes by the run time instead of the epoch count.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrct.io.atomic import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "mrct-checkpoint-2"


def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointClock:
    """Says when ``minutes`` of wall-clock time have passed since the last save (or the start)."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = minutes * 60.0
        self.clock = clock
        self.last = clock()

    def due(self) -> bool:
        return self.clock() - self.last >= self.interval

    def reset(self) -> None:
        self.last = self.clock()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> int:
    """Write ``state`` (plus the format tag) atomically; return its size in bytes.

    A kill during the write leaves the previous checkpoint in place.
    """
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
        size = Path(tmp).stat().st_size
    return size


def load_checkpoint(path: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists and was written with ``fingerprint``, else None.

    A checkpoint of other settings, or an unreadable one, is deleted with a warning: resuming
    from it would mix two experiments.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a checkpoint is disposable; never fail the run because of it
        log.warning("%s: unreadable checkpoint discarded (%s)", path, error)
        path.unlink()
        return None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        log.warning("%s: not a %s file; discarded", path, CHECKPOINT_FORMAT)
        path.unlink()
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning("%s: written with other settings or inputs; discarded, training starts afresh", path)
        path.unlink()
        return None
    return state
