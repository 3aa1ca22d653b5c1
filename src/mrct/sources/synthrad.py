"""The `synthrad2023` data source: SynthRAD2023 Task 1 (MR -> CT), Zenodo record 7260705.

The archive ``Task1.zip`` holds ``Task1/<region>/<patient>/{mr,ct,mask}.nii.gz`` for the
regions ``brain`` and ``pelvis``. The patient list is read from the zip's central directory
(no extraction, so it is cheap at DAG-build time); each patient is extracted on its own so
that patients unpack in parallel. Members are matched by their last three path parts
(region/patient/file), so an extra top-level folder in a repacked zip does not matter.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from collections import defaultdict
from pathlib import Path, PurePosixPath

from mrct.io.atomic import atomic_path
from mrct.sources.local import PATIENT_ID

log = logging.getLogger(__name__)

REGIONS = ("brain", "pelvis")
REQUIRED = ("mr", "ct")
OPTIONAL = ("mask",)
SUFFIX = ".nii.gz"


def _open(archive: str | Path) -> zipfile.ZipFile:
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: SynthRAD2023 archive not found")
    try:
        return zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive}: not a readable zip archive ({error}); delete it and rerun") from None


def _index(zf: zipfile.ZipFile, region: str) -> dict[str, dict[str, str]]:
    """Map patient -> {modality: member name} for the members of ``region``."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    index: dict[str, dict[str, str]] = defaultdict(dict)
    for name in zf.namelist():
        parts = PurePosixPath(name).parts
        if len(parts) < 3 or parts[-3].lower() != region or not parts[-1].lower().endswith(SUFFIX):
            continue
        modality = parts[-1][: -len(SUFFIX)].lower()
        if modality in REQUIRED + OPTIONAL:
            index[parts[-2]][modality] = name
    return index


def synthrad_patient_ids(archive: str | Path, region: str = "brain") -> list[str]:
    """Sorted ids of the patients of ``region`` that have both an MR and a CT in the archive."""
    with _open(archive) as zf:
        index = _index(zf, region)
    ids = []
    for patient, members in sorted(index.items()):
        missing = [m for m in REQUIRED if m not in members]
        if missing:
            log.warning("%s: patient %s of %s lacks %s; skipped", archive, patient, region, missing)
        elif not PATIENT_ID.fullmatch(patient):
            log.warning("%s: patient folder %r is not a valid id; skipped", archive, patient)
        else:
            ids.append(patient)
    if not ids:
        raise ValueError(
            f"{archive}: no {region} patients found; expected members "
            f"Task1/{region}/<patient>/mr.nii.gz and ct.nii.gz"
        )
    return ids


def extract_patient(
    archive: str | Path, region: str, patient: str, out_dir: str | Path
) -> dict[str, Path]:
    """Extract ``mr``, ``ct`` (and ``mask`` when present) of one patient to ``out_dir/<name>.nii.gz``.

    Each file is written atomically; reading a member to its end checks its CRC-32, so a
    damaged archive raises instead of leaving a corrupt volume.
    """
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    with _open(archive) as zf:
        members = _index(zf, region).get(patient)
        if members is None:
            raise ValueError(f"{archive}: patient {patient!r} not found in region {region!r}")
        missing = [m for m in REQUIRED if m not in members]
        if missing:
            raise ValueError(f"{archive}: patient {patient!r} lacks {', '.join(missing)}")
        for modality, member in sorted(members.items()):
            target = out_dir / f"{modality}{SUFFIX}"
            try:
                with zf.open(member) as source, atomic_path(target) as tmp, open(tmp, "wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise ValueError(f"{archive}: member {member} is damaged ({error})") from None
            log.info("extracted %s -> %s", member, target)
            written[modality] = target
    return written
