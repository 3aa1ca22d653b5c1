"""Which device a network job runs on, and on a machine with several GPUs, which GPU.

``resolve_device`` turns the config's ``device`` (auto, cpu, cuda, cuda:N) into a torch
device. The GPU choice follows the scheduler first: when ``CUDA_VISIBLE_DEVICES`` is set
(SLURM sets it for every job that asked for a GPU; a user may set it by hand), the job uses
the first GPU it names, ``cuda:0`` inside the process, and takes no lock. Otherwise, with
several GPUs visible, each job takes a slot lock: an ``flock`` on one file per (GPU, slot) in a
machine-local lock directory. Jobs fill slot 0 of every GPU before slot 1 of any, so N jobs on
G GPUs are spread evenly, and two jobs started in the same instant never pick the same slot
(``flock`` is atomic). The kernel drops the lock when the process ends, even on SIGKILL, so a
crashed job never leaves a GPU marked busy. GPUs used by other programs are not seen.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: Lock directory; machine-local on purpose (GPUs belong to one machine). Overridable for tests.
LOCK_DIR_ENV = "MRCT_GPU_LOCK_DIR"
#: More jobs than this per GPU is surely a mistake; beyond it jobs share cuda:0 unlocked.
MAX_SLOTS_PER_GPU = 64

# The open lock file of this process (kept open: closing it would release the lock) and its device.
_held: tuple[int, torch.device] | None = None


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "mrct-gpu-locks")


def _try_lock(path: Path) -> int | None:
    """An open, exclusively flock-ed descriptor of ``path``, or None when another process holds it."""
    # Read-only is enough for flock, so a lock file another user created (mode 0644) still works.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_gpu(count: int, directory: str | Path | None = None) -> torch.device:
    """Lock a (GPU, slot) pair for this process and return its device (see the module docstring).

    The claim lasts until the process ends or ``release_gpu`` is called; a second call in the
    same process returns the GPU it already holds.
    """
    global _held
    if _held is not None:
        return _held[1]
    directory = Path(directory) if directory is not None else lock_dir()
    try:
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o1777)  # shared by every user of the machine, like /tmp itself
        for slot in range(MAX_SLOTS_PER_GPU):
            for index in range(count):
                fd = _try_lock(directory / f"gpu{index}.slot{slot}.lock")
                if fd is not None:
                    _held = (fd, torch.device("cuda", index))
                    log.info("GPU %d of %d, slot %d (lock in %s)", index, count, slot, directory)
                    return _held[1]
    except OSError as error:
        log.warning("GPU lock directory %s unusable (%s); using cuda:0 unlocked (set %s)", directory, error,
                    LOCK_DIR_ENV)
        return torch.device("cuda", 0)
    log.warning("more than %d jobs per GPU hold locks in %s; using cuda:0 unlocked", MAX_SLOTS_PER_GPU, directory)
    return torch.device("cuda", 0)


def release_gpu() -> None:
    """Give back this process's GPU slot (a finished process gives it back by itself)."""
    global _held
    if _held is not None:
        os.close(_held[0])
        _held = None


def _pick_gpu() -> torch.device:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        # The scheduler (or the user) chose: the process sees only these GPUs, numbered from 0.
        log.info("CUDA_VISIBLE_DEVICES=%s: using its first GPU as cuda:0", visible)
        return torch.device("cuda", 0)
    count = torch.cuda.device_count()
    if count <= 1:
        return torch.device("cuda", 0)
    return claim_gpu(count)


def resolve_device(name: str) -> torch.device:
    """The torch device for the config value ``name``: auto, cpu, cuda or cuda:N.

    ``auto`` and ``cuda`` choose a GPU as the module docstring says; ``cuda:N`` is taken as
    given (no lock), ``auto`` falls back to the CPU when no GPU is present.
    """
    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        if name == "auto":
            return torch.device("cpu")
        raise ValueError(f"device: {name} requested but no CUDA device is available")
    if name.startswith("cuda:"):
        return torch.device(name)
    return _pick_gpu()
