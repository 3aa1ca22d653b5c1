"""Which patients a run uses, and from which centre each comes.

A multi-centre archive sorted by id lists one centre after another (SynthRAD2023 brain: 60
patients of centre A, then B, then C), so "the first 18" would be 18 patients of one centre,
one scanner and one protocol. ``dataset.max_patients`` therefore draws a seeded sample
balanced across centres, and ``dataset.patients`` names the set explicitly. The choice and
each patient's centre are written to ``results/preprocessed/patients.csv`` and shown in the
report, so that a reader sees what the numbers were measured on.

The centre of a SynthRAD patient is in its id: task digit, region code (SynthRAD2023: ``B``
brain, ``P`` pelvis; SynthRAD2025: ``AB``, ``HN``, ``TH``), centre letter, number; ``1BA001`` is
brain patient 1 of centre A, ``1HNC012`` head-and-neck patient 12 of centre C. A table that comes
with the data (SynthRAD's overview spreadsheet, a CSV beside a local folder's patients) comes first
where it names a patient's centre (:mod:`mrct.sources.centres`). Patients with no known centre
(empty) are one group: a source without centres gets a plain seeded sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.io.atomic import atomic_path

#: Columns of results/preprocessed/patients.csv.
PATIENT_COLUMNS = ["patient", "centre", "source"]
_SYNTHRAD_ID = re.compile(r"\d(?:AB|HN|TH|B|P)([A-Z])\d+")


def centre_of(patient: str, source: str) -> str:
    """The centre letter of a SynthRAD patient id; empty when the source or the id does not say."""
    if not source.startswith("synthrad"):
        return ""
    match = _SYNTHRAD_ID.fullmatch(patient)
    return match.group(1) if match else ""


def patient_centre(patient: str, source: str, centres: Mapping[str, str] | None = None) -> str:
    """The centre a table that came with the data names (``centres``), else the id's (:func:`centre_of`)."""
    return (centres or {}).get(patient) or centre_of(patient, source)


def balanced_sample(centres: dict[str, str], n: int, seed: int) -> list[str]:
    """``n`` patients drawn in rounds, one per centre per round, until ``n`` are drawn (sorted).

    Within a centre the order is a seeded shuffle; in each round the centres take their turn
    in a seeded order too, so a remainder (7 of 3 centres) does not always favour centre A.
    A centre with fewer patients than its share runs out, and the others fill the rest.
    The draw is separate from the ids' order in the archive: the same ids give the same sample.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for patient in sorted(centres):
        groups.setdefault(centres[patient], []).append(patient)
    queues = {centre: list(rng.permutation(ids)) for centre, ids in sorted(groups.items())}
    chosen: list[str] = []
    while len(chosen) < n and any(queues.values()):
        for centre in rng.permutation(sorted(c for c, q in queues.items() if q)):
            if len(chosen) == n:
                break
            chosen.append(str(queues[str(centre)].pop(0)))
    return sorted(chosen)


def choose_patients(
    ids: Iterable[str], source: str, *, max_patients: int | None, patients: Sequence[str] | None, seed: int,
    centres: Mapping[str, str] | None = None,
) -> list[str]:
    """The sorted patients a run uses: ``patients`` when given, else a balanced sample of
    ``max_patients`` (see balanced_sample), else all ``ids``.

    Raises ValueError naming the key when both are set, or when a named patient is not in the source.
    """
    available = sorted(set(ids))
    if patients:
        if max_patients:
            raise ValueError(
                f"dataset.patients ({len(patients)} ids) and dataset.max_patients ({max_patients}) are both set; "
                "set max_patients: null to use the list, or drop the list to draw a sample"
            )
        missing = sorted(set(patients) - set(available))
        if missing:
            raise ValueError(
                f"dataset.patients names {len(missing)} patient(s) that the {source} source does not have: "
                f"{', '.join(missing)} (it has {len(available)}: {', '.join(available[:5])}"
                f"{', ...' if len(available) > 5 else ''})"
            )
        return sorted(set(patients))
    if max_patients and max_patients < len(available):
        return balanced_sample({p: patient_centre(p, source, centres) for p in available}, max_patients, seed)
    return available


def patients_table(patients: Iterable[str], source: str, centres: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per chosen patient: ``patient, centre, source`` (centre empty where unknown)."""
    rows = [(p, patient_centre(p, source, centres), source) for p in sorted(patients)]
    return pd.DataFrame(rows, columns=PATIENT_COLUMNS)


def write_patients_table(patients: Iterable[str], source: str, path: str | Path,
                         centres: Mapping[str, str] | None = None) -> pd.DataFrame:
    table = patients_table(patients, source, centres)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def read_patients_table(path: str | Path) -> pd.DataFrame:
    """patients.csv as written, the centre as text (empty, not NaN, where unknown)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
