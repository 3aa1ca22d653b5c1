"""Atomic writes: an output appears complete or not at all.

Snakemake removes the declared outputs of a failed job, but a killed process (SIGKILL, a
cluster's time limit, a full disk) can still leave a half-written file behind that a later run
would take for a result. Every writer in the package therefore writes to a temporary file in
the target's folder and renames it into place, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    ``suffix`` defaults to the target's own suffixes, so writers that choose a format by the
    file name (``.nii.gz``, ``.png``, ``.tfm``) still see the right one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(handle)
    # mkstemp creates files readable by the owner only; give outputs the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
