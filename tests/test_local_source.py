"""mrct.sources.local: patient folders and modality files are found by name only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mrct.io.volumes import read_volume
from mrct.sources.local import find_modality, find_patients


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_find_patients_lists_data_folders_sorted_and_skips_others(tmp_path: Path) -> None:
    _touch(tmp_path / "p02" / "mr.nii.gz")
    _touch(tmp_path / "p02" / "ct.nii.gz")
    _touch(tmp_path / "p01" / "MR.nrrd")
    _touch(tmp_path / "p01" / "ct.mha")
    (tmp_path / "p03" / "mr").mkdir(parents=True)  # DICOM folders
    (tmp_path / "p03" / "ct").mkdir()
    _touch(tmp_path / ".cache" / "mr.nii.gz")  # hidden: ignored
    _touch(tmp_path / "notes" / "readme.txt")  # no image: ignored
    _touch(tmp_path / "summary.csv")  # a file, not a folder
    assert find_patients(tmp_path) == ["p01", "p02", "p03"]


def test_find_patients_missing_root_names_it(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(root))):
        find_patients(root)


def test_find_patients_without_patient_folders_names_root(tmp_path: Path) -> None:
    _touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + ".*no patient folders"):
        find_patients(tmp_path)


def test_find_patients_rejects_a_folder_name_that_is_no_valid_id(tmp_path: Path) -> None:
    _touch(tmp_path / "patient 1" / "mr.nii.gz")
    with pytest.raises(ValueError, match="patient 1"):
        find_patients(tmp_path)


@pytest.mark.parametrize("name", ["mr.nii.gz", "mr.nii", "mr.nrrd", "mr.mha", "mr.mhd", "Mr.NII.GZ"])
def test_find_modality_finds_each_file_format(tmp_path: Path, name: str) -> None:
    path = _touch(tmp_path / name)
    _touch(tmp_path / "mr_notes.txt")
    assert find_modality(tmp_path, "mr") == path


def test_find_modality_finds_a_dicom_folder_case_insensitively(tmp_path: Path) -> None:
    (tmp_path / "CT").mkdir()
    assert find_modality(tmp_path, "ct") == tmp_path / "CT"


def test_find_modality_missing_names_folder_and_what_was_looked_for(tmp_path: Path) -> None:
    _touch(tmp_path / "mr.nii.gz")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path)) + ".*ct.nii.gz.*DICOM folder ct/"):
        find_modality(tmp_path, "ct")


def test_find_modality_ambiguous_lists_both_candidates(tmp_path: Path) -> None:
    _touch(tmp_path / "ct.nii.gz")
    (tmp_path / "ct").mkdir()
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + ".*ambiguous.*ct, ct.nii.gz"):
        find_modality(tmp_path, "ct")


def test_find_modality_missing_patient_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="p09"):
        find_modality(tmp_path / "p09", "mr")


def test_found_files_are_readable_volumes(make_volume, tmp_path: Path) -> None:  # noqa: ANN001
    make_volume("p01/mr.nrrd")
    make_volume("p01/ct.nii.gz")
    patient_dir = tmp_path / find_patients(tmp_path)[0]
    for modality in ("mr", "ct"):
        assert read_volume(find_modality(patient_dir, modality), modality).GetSize() == (8, 8, 8)
