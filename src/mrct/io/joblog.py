"""Plumbing shared by the entry points in ``scripts/``: the rule's log file, untracked settings."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any


def setup_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send ``logging`` records and uncaught errors to ``log_path`` (the rule's ``log:``).

    stderr is redirected too, so warnings and tracebacks from libraries land in the same file;
    Snakemake prints the log's path when a job fails.
    """
    handlers: list[logging.Handler] = []
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
        sys.stderr = stream
        handlers.append(logging.StreamHandler(stream))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("mrct")


def untracked_setting(smk: Any, *keys: str) -> Any:
    """A config value that a job reads although its outputs do not depend on it.

    Everything else reaches a script through the rule's ``input``, ``output`` and ``params``.
    These few values (the device, the checkpoint interval, download retries and timeouts, a
    checksum pin) are kept out of ``params`` on purpose: Snakemake reruns a job whose params
    change, and moving training to a GPU or pinning an archive's checksum must not recompute
    results. This is the one place scripts read the config; the rule's comment names the key.
    """
    value = smk.config
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(f"config key {'.'.join(keys[: depth + 1])} not found")
        value = value[key]
    return value
