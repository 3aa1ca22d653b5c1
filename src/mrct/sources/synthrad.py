"""The SynthRAD sources: Task 1 (MR -> CT) of SynthRAD2023 and SynthRAD2025.

Both archives are laid out as published, one folder per region and patient:

* SynthRAD2023 (``synthrad2023``, Zenodo record 7260705): ``Task1/{brain,pelvis}/<id>/{mr,ct,mask}.nii.gz``
  with ``Task1/<region>/overview/`` (a spreadsheet per region) beside the patients;
* SynthRAD2025 (``synthrad2025``): ``Task1/{AB,HN,TH}/<id>/{mr,ct,mask}.mha`` (abdomen, head and
  neck, thorax).

One reader serves both; a challenge differs only in its regions and its file suffix. The patient
list is read from the zip's central directory (no extraction, so it is cheap at DAG-build time);
each patient is extracted on its own so that patients unpack in parallel, byte for byte (the
members are kept in their published format: mrct.io.volumes reads NIfTI and MetaImage). Members
are matched by their last three path parts (region/patient/file), so an extra top-level folder
in a repacked zip does not matter, and region names match whatever their case.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from mrct.io.atomic import atomic_path
from mrct.sources.centres import TABLE_SUFFIXES, centres_in_tables
from mrct.sources.local import PATIENT_ID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenge:
    """What differs between the SynthRAD Task 1 archives: their regions and file suffix."""

    name: str
    regions: tuple[str, ...]
    suffix: str


CHALLENGES = {
    "synthrad2023": Challenge("synthrad2023", ("brain", "pelvis"), ".nii.gz"),
    "synthrad2025": Challenge("synthrad2025", ("AB", "HN", "TH"), ".mha"),
}
REQUIRED = ("mr", "ct")
OPTIONAL = ("mask",)


def challenge_of(name: str) -> Challenge:
    if name not in CHALLENGES:
        raise ValueError(f"SynthRAD challenge must be one of {sorted(CHALLENGES)}, got {name!r}")
    return CHALLENGES[name]


def _open(archive: str | Path) -> zipfile.ZipFile:
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: SynthRAD archive not found")
    try:
        return zipfile.ZipFile(archive)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive}: not a readable zip archive ({error}); delete it and rerun") from None


def _index(zf: zipfile.ZipFile, region: str, challenge: Challenge) -> dict[str, dict[str, str]]:
    """Map patient -> {modality: member name} for the members of ``region``."""
    if region.lower() not in {r.lower() for r in challenge.regions}:
        raise ValueError(f"{challenge.name} region must be one of {challenge.regions}, got {region!r}")
    index: dict[str, dict[str, str]] = defaultdict(dict)
    for name in zf.namelist():
        parts = PurePosixPath(name).parts
        if len(parts) < 3 or parts[-3].lower() != region.lower() or not parts[-1].lower().endswith(challenge.suffix):
            continue
        modality = parts[-1][: -len(challenge.suffix)].lower()
        if modality in REQUIRED + OPTIONAL:
            index[parts[-2]][modality] = name
    return index


def synthrad_patient_ids(archive: str | Path, region: str = "brain", challenge: str = "synthrad2023") -> list[str]:
    """Sorted ids of the patients of ``region`` that have both an MR and a CT in the archive."""
    kind = challenge_of(challenge)
    with _open(archive) as zf:
        index = _index(zf, region, kind)
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
            f"Task1/{region}/<patient>/mr{kind.suffix} and ct{kind.suffix} ({kind.name})"
        )
    return ids


def overview_centres(archive: str | Path, region: str = "brain", challenge: str = "synthrad2023") -> dict[str, str]:
    """Patient id -> centre from the region's overview tables (``<region>/overview/*.xlsx``), if any.

    Read from the zip without extracting; {} when there is none, or none names a centre
    (see :mod:`mrct.sources.centres`).
    """
    stat = Path(archive).stat()
    return dict(_overview_centres(str(archive), stat.st_size, stat.st_mtime_ns, region.lower(), challenge))


@lru_cache(maxsize=8)
def _overview_centres(archive: str, size: int, mtime_ns: int, region: str, challenge: str) -> dict[str, str]:
    """Cached per archive file and version: the DAG asks for the patients many times."""
    challenge_of(challenge)
    with _open(archive) as zf:
        members = [name for name in zf.namelist()
                   if len(parts := PurePosixPath(name).parts) >= 3 and parts[-3].lower() == region
                   and parts[-2].lower() == "overview" and PurePosixPath(name).suffix.lower() in TABLE_SUFFIXES]
        return centres_in_tables((f"{archive}:{m}", zf.read(m)) for m in sorted(members))


def extract_patient(
    archive: str | Path, region: str, patient: str, out_dir: str | Path, challenge: str = "synthrad2023"
) -> dict[str, Path]:
    """Extract ``mr``, ``ct`` (and ``mask`` when present) of one patient to ``out_dir/<name><suffix>``.

    Each file is written atomically; reading a member to its end checks its CRC-32, so a
    damaged archive raises instead of leaving a corrupt volume.
    """
    kind = challenge_of(challenge)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    with _open(archive) as zf:
        members = _index(zf, region, kind).get(patient)
        if members is None:
            raise ValueError(f"{archive}: patient {patient!r} not found in region {region!r}")
        missing = [m for m in REQUIRED if m not in members]
        if missing:
            raise ValueError(f"{archive}: patient {patient!r} lacks {', '.join(missing)}")
        for modality, member in sorted(members.items()):
            target = out_dir / f"{modality}{kind.suffix}"
            try:
                with zf.open(member) as source, atomic_path(target) as tmp, open(tmp, "wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise ValueError(f"{archive}: member {member} is damaged ({error})") from None
            log.info("extracted %s -> %s", member, target)
            written[modality] = target
    return written
