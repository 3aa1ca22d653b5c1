"""Stop a training run cleanly when the scheduler asks: SIGTERM or SIGUSR1.

SLURM sends SIGTERM at a job's time limit (and, with ``--signal``, some minutes before it), then
SIGKILL after a grace period; preemption sends SIGTERM too. The handler only records the
signal; the loop finishes its current step, saves a checkpoint and raises
``TrainingInterrupted``, which ends the process with status 128 + signal number. Snakemake then
sees a failed job, and its retry (or the next run) resumes from the checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(SystemExit):
    """Raised after the checkpoint is saved; as a SystemExit it ends the process with 128 + signum.

    It passes through ``except Exception`` on purpose: nothing should swallow a stop request.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"training stopped by {signal.Signals(self.signum).name} after saving its checkpoint"


@dataclass
class StopRequest:
    """The first stop signal received, if any (set by the handler, read by the loop)."""

    signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Record ``signals`` in the yielded StopRequest instead of dying; old handlers restored after.

    Handlers can only be installed from the main thread; elsewhere (a training run inside a
    thread) the signals keep their old behaviour and the request never fires.
    """
    request = StopRequest()

    def handler(signum: int, _frame: object) -> None:
        if request.signum is None:
            request.signum = signum

    if threading.current_thread() is not threading.main_thread():
        log.debug("not the main thread: stop signals not handled")
        yield request
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
