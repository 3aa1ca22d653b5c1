"""The `local` data source: a folder with one sub-folder per patient holding an MR and a CT.

Layout (names case-insensitive)::

    root/
      patient01/  mr.nii.gz  ct.nii.gz        NIfTI
      patient02/  mr.nrrd    ct.mha           NRRD / MetaImage (.mhd with its .raw)
      patient03/  mr/  ct/                    DICOM series folders

These functions run while Snakemake builds the DAG (from ``rules/common.smk``), so they only
look at names and never read images: a bad image is reported by ``mrct.io.volumes.read_volume``
when the first job reads it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

MODALITIES = ("mr", "ct")
# Suffixes of the single-file formats mrct.io.volumes reads, in the order they are listed in messages.
FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
# Patient ids become file names and Snakemake wildcards (see wildcard_constraints in common.smk).
PATIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _visible_children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _names_of(modality: str) -> tuple[str, ...]:
    return tuple(modality + suffix for suffix in FILE_SUFFIXES)


def _candidates(patient_dir: Path, modality: str) -> list[Path]:
    """Entries of ``patient_dir`` that could hold ``modality``: a known image file or a DICOM folder."""
    names = _names_of(modality)
    found = []
    for entry in _visible_children(patient_dir):
        lower = entry.name.lower()
        if entry.is_dir() and lower == modality:
            found.append(entry)
        elif entry.is_file() and lower in names:
            found.append(entry)
    return found


def _holds_data(folder: Path) -> bool:
    return any(_candidates(folder, modality) for modality in MODALITIES)


def find_patients(root: str | Path) -> list[str]:
    """Sorted ids (folder names) of the patient folders under ``root``.

    A patient folder is a non-hidden sub-folder holding an MR or a CT (so that a stray folder of
    notes is skipped, with a warning); a folder holding only one of them is kept so that the
    missing one is reported by name when its job is planned.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: dataset folder not found (dataset.path, with dataset.source: local); "
            "expected one sub-folder per patient holding mr and ct images"
        )
    patients = []
    for folder in _visible_children(root):
        if not folder.is_dir():
            continue
        if not _holds_data(folder):
            log.warning("%s: no mr or ct image in this folder; skipped", folder)
            continue
        if not PATIENT_ID.fullmatch(folder.name):
            raise ValueError(
                f"{folder}: patient folder name {folder.name!r} is not a valid id; expected "
                "letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        patients.append(folder.name)
    if not patients:
        raise ValueError(
            f"{root}: no patient folders found; expected sub-folders holding "
            f"mr and ct images ({', '.join(_names_of('mr'))} or a DICOM folder mr/, same for ct)"
        )
    return patients


def find_modality(patient_dir: str | Path, modality: str) -> Path:
    """The single image file or DICOM folder of ``modality`` ('mr' or 'ct') in ``patient_dir``."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise FileNotFoundError(f"{patient_dir}: patient folder not found")
    found = _candidates(patient_dir, modality)
    if not found:
        raise FileNotFoundError(
            f"{patient_dir}: no {modality.upper()} image; looked for "
            f"{', '.join(_names_of(modality))} or a DICOM folder {modality}/ (case-insensitive)"
        )
    if len(found) > 1:
        raise ValueError(
            f"{patient_dir}: ambiguous {modality.upper()}: {', '.join(p.name for p in found)}; "
            "keep exactly one"
        )
    return found[0]
