"""mrct.sources.synthrad on a tiny fake SynthRAD2023 Task 1 archive made here."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from mrct.sources.synthrad import extract_patient, synthrad_patient_ids


def _content(member: str) -> bytes:
    return f"content of {member}\n".encode() * 50


def _make_archive(path: Path, members: list[str], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for member in members:
            zf.writestr(member, _content(member))
    return path


LAYOUT = [
    "Task1/brain/1BA001/mr.nii.gz",
    "Task1/brain/1BA001/ct.nii.gz",
    "Task1/brain/1BA001/mask.nii.gz",
    "Task1/brain/1BA002/ct.nii.gz",
    "Task1/brain/1BA002/mr.nii.gz",
    "Task1/brain/1BA003/mr.nii.gz",  # no CT: skipped
    "Task1/brain/overview/1_brain_train.xlsx",
    "Task1/pelvis/1PA001/mr.nii.gz",
    "Task1/pelvis/1PA001/ct.nii.gz",
]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return _make_archive(tmp_path / "Task1.zip", LAYOUT)


def test_patient_ids_per_region(archive: Path) -> None:
    assert synthrad_patient_ids(archive, "brain") == ["1BA001", "1BA002"]
    assert synthrad_patient_ids(archive, "pelvis") == ["1PA001"]


def test_patient_ids_with_a_top_level_folder_prefix(tmp_path: Path) -> None:
    prefixed = _make_archive(tmp_path / "repacked.zip", [f"SynthRAD2023/{m}" for m in LAYOUT])
    assert synthrad_patient_ids(prefixed, "brain") == ["1BA001", "1BA002"]
    written = extract_patient(prefixed, "brain", "1BA002", tmp_path / "out")
    assert written["ct"].read_bytes() == _content("SynthRAD2023/Task1/brain/1BA002/ct.nii.gz")


def test_extract_patient_writes_mr_ct_and_mask(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw" / "1BA001"
    written = extract_patient(archive, "brain", "1BA001", out)
    assert set(written) == {"mr", "ct", "mask"}
    for modality, path in written.items():
        assert path == out / f"{modality}.nii.gz"
        assert path.read_bytes() == _content(f"Task1/brain/1BA001/{modality}.nii.gz")
    assert sorted(p.name for p in out.iterdir()) == ["ct.nii.gz", "mask.nii.gz", "mr.nii.gz"]


def test_extract_unknown_patient_names_archive(archive: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(str(archive)) + ".*1BA999"):
        extract_patient(archive, "brain", "1BA999", tmp_path / "out")


def test_damaged_member_leaves_no_file(tmp_path: Path) -> None:
    archive = _make_archive(tmp_path / "Task1.zip", LAYOUT, compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    marker = _content("Task1/brain/1BA001/mr.nii.gz")
    start = bytes(data).index(marker)
    data[start + 10] ^= 0xFF  # one flipped byte inside the stored MR: its CRC-32 no longer matches
    archive.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="mr.nii.gz is damaged"):
        extract_patient(archive, "brain", "1BA001", out)
    assert not (out / "mr.nii.gz").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_region_without_patients(tmp_path: Path) -> None:
    archive = _make_archive(tmp_path / "Task1.zip", LAYOUT[-2:])
    with pytest.raises(ValueError, match="no brain patients"):
        synthrad_patient_ids(archive, "brain")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Task1.zip"):
        synthrad_patient_ids(tmp_path / "Task1.zip", "brain")


def test_not_a_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "Task1.zip"
    bogus.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ValueError, match=re.escape(str(bogus)) + ".*not a readable zip"):
        synthrad_patient_ids(bogus, "brain")


def test_unknown_region(archive: Path) -> None:
    with pytest.raises(ValueError, match="'head'"):
        synthrad_patient_ids(archive, "head")
