"""Each patient's centre from a table that comes with the data: a spreadsheet or CSV.

SynthRAD ships one per region (``Task1/<region>/overview/``, an ``.xlsx`` beside the patients), and
a user's own multi-centre data often comes with a list of its patients. Where such a table names
a patient's centre, that is what the data says, so it is used first; a SynthRAD id's centre letter
is the fallback (:func:`mrct.sources.patients.centre_of`), and a disagreement between the two is
logged once, with the counts, so that a table using other labels (a hospital's name for ``A``) is
seen rather than silently merged.

A table is recognised by its column names, not by a fixed layout, because the layouts differ:
a column of patient ids (``ID``, ``patient``, ``subject``, ``case`` ...) and one of centres
(``center``, ``centre``, ``site``, ``institution``, ``hospital``), matched whatever their case
and punctuation (``Patient ID``, ``patient_id``). Every sheet of a workbook is read. A table that
cannot be read, or that has no such columns, is skipped with a line in the log: it is an aid to a
balanced draw, and the run does not depend on it.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

#: Column names (lower case, letters and digits only) that hold a patient's id, or its centre.
ID_COLUMNS = ("id", "patient", "patientid", "subject", "subjectid", "case", "caseid")
CENTRE_COLUMNS = ("centre", "center", "site", "institution", "hospital", "centreid", "centerid")
#: File suffixes read as tables.
TABLE_SUFFIXES = (".xlsx", ".xlsm", ".csv", ".tsv")


def _key(column: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(column).lower())


def _column(frame: pd.DataFrame, names: tuple[str, ...]) -> object | None:
    """The first of ``frame``'s columns whose normalised name is in ``names`` (their order first)."""
    keys = {_key(c): c for c in reversed(list(frame.columns))}
    return next((keys[name] for name in names if name in keys), None)


def _cell(value: object) -> str:
    """A cell as text: '' for an empty cell, integers without a trailing '.0' (Excel's numbers)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def centres_in_frame(frame: pd.DataFrame) -> dict[str, str]:
    """Patient id -> centre, from a frame with an id and a centre column; {} when it has not both."""
    id_column, centre_column = _column(frame, ID_COLUMNS), _column(frame, CENTRE_COLUMNS)
    if id_column is None or centre_column is None:
        return {}
    pairs = ((_cell(i), _cell(c)) for i, c in zip(frame[id_column], frame[centre_column], strict=True))
    return {patient: centre for patient, centre in pairs if patient and centre}


def _frames(name: str, content: bytes) -> list[pd.DataFrame]:
    suffix = Path(name).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return [pd.read_csv(io.BytesIO(content), sep="\t" if suffix == ".tsv" else ",", dtype=object)]
    return list(pd.read_excel(io.BytesIO(content), sheet_name=None, dtype=object).values())


def centres_in_tables(tables: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    """Patient id -> centre from every readable table among ``(name, content)`` pairs.

    A patient named with two different centres keeps the first and is logged.
    """
    centres: dict[str, str] = {}
    for name, content in tables:
        try:
            frames = _frames(name, content)
        except Exception as error:  # noqa: BLE001 - any unreadable table is skipped, and said so
            log.warning("%s: not read as a table of centres (%s: %s); centres come from the ids",
                        name, type(error).__name__, error)
            continue
        found = {}
        for frame in frames:
            found.update(centres_in_frame(frame))
        if not found:
            log.info("%s: no patient-id and centre columns (%s / %s); not used for centres",
                     name, ", ".join(ID_COLUMNS), ", ".join(CENTRE_COLUMNS))
            continue
        for patient, centre in found.items():
            if centres.setdefault(patient, centre) != centre:
                log.warning("%s: patient %s has centre %r here and %r in an earlier table; kept %r",
                            name, patient, centre, centres[patient], centres[patient])
        log.info("%s: centres of %d patients (%s)", name, len(found), ", ".join(sorted(set(found.values()))))
    return centres


def table_files(folder: str | Path) -> list[Path]:
    """The tables directly in ``folder`` and in its ``overview`` sub-folder (sorted), if any."""
    folder = Path(folder)
    found = []
    for place in (folder, folder / "overview"):
        if place.is_dir():
            found += [p for p in sorted(place.iterdir())
                      if p.is_file() and not p.name.startswith((".", "~$")) and p.suffix.lower() in TABLE_SUFFIXES]
    return found


def centres_in_folder(folder: str | Path) -> dict[str, str]:
    """Patient id -> centre from the tables of a local data folder (see :func:`table_files`).

    Cached per set of files and their versions: the DAG asks for the patients many times.
    """
    versions = tuple((str(p), stat.st_size, stat.st_mtime_ns) for p in table_files(folder) for stat in [p.stat()])
    return dict(_centres_of_files(versions))


@lru_cache(maxsize=8)
def _centres_of_files(versions: tuple[tuple[str, int, int], ...]) -> dict[str, str]:
    return centres_in_tables((path, Path(path).read_bytes()) for path, _, _ in versions)


def report_disagreements(table_centres: Mapping[str, str], id_centres: Mapping[str, str]) -> None:
    """One log line when the table and the ids name different centres for the same patients."""
    differ = {p: (c, id_centres[p]) for p, c in table_centres.items() if id_centres.get(p) and id_centres[p] != c}
    if differ:
        examples = ", ".join(f"{p}: {t!r} in the table, {i!r} in the id" for p, (t, i) in sorted(differ.items())[:3])
        log.warning("the overview table and the ids name different centres for %d patients (%s); the table's "
                    "are used", len(differ), examples)
