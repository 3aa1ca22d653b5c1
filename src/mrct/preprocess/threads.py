"""A fixed ITK thread count around a filter, so that its result does not depend on the machine.

ITK splits work by thread and sums the partial results: N4's B-spline fit adds per-thread
lattices, and Mattes mutual information adds every sample into one joint histogram in whatever
order the threads arrive. Floating-point sums in another order give another field or transform
(about 1e-6 relative), which flips some 8-bit slice values and, through training, every table.
SimpleITK's own documentation prescribes one thread for reproducible registration; the count
is global in ITK (inner filters take it when they are built), hence a context manager.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import SimpleITK as sitk

# Mattes MI is reproducible only on one thread (any other count still races).
REGISTRATION_THREADS = 1
# N4 is reproducible for a given count; two keeps it fast and the same on every machine.
BIAS_CORRECTION_THREADS = 2


@contextmanager
def itk_threads(count: int) -> Iterator[None]:
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
