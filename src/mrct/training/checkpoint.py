"""Resumable training state: written atomically, accepted only for identical settings.

The checkpoint holds the four networks, both optimisers and the gradient scaler, the two
schedulers, the image pools (buffers and random generators), the python/numpy/torch random
states, the number of finished epochs and the log rows so far. Data order needs no state: each
epoch is seeded from (seed, epoch) (see mrct.training.data).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrct.io.atomic import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "mrct-checkpoint-1"


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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) atomically: a kill leaves the previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)


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
