"""mrct.sources.synthrad on tiny fake SynthRAD2023 and SynthRAD2025 Task 1 archives made here."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from mrct.sources.patients import choose_patients, patients_table
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


# -- the archives as published: three centres, an overview folder, a second region ----------


def published_2023_layout(per_centre: int = 4) -> list[str]:
    """SynthRAD2023 Task1.zip as published: brain and pelvis, patients of centres A, B and C,
    and each region's overview spreadsheet beside its patients."""
    members = []
    for region, code in (("brain", "B"), ("pelvis", "P")):
        for centre in "ABC":
            for number in range(1, per_centre + 1):
                members += [f"Task1/{region}/1{code}{centre}{number:03d}/{m}.nii.gz" for m in ("mr", "ct", "mask")]
        members.append(f"Task1/{region}/overview/1_{region}_train.xlsx")
    return members


def test_published_2023_layout_lists_each_region_and_skips_the_overview(tmp_path: Path) -> None:
    archive = _make_archive(tmp_path / "Task1.zip", published_2023_layout())
    brain = synthrad_patient_ids(archive, "brain")
    assert len(brain) == 12 and all(p.startswith("1B") for p in brain) and "overview" not in brain
    assert synthrad_patient_ids(archive, "pelvis")[:2] == ["1PA001", "1PA002"]


def test_max_patients_six_takes_two_per_centre_from_the_published_layout(tmp_path: Path) -> None:
    archive = _make_archive(tmp_path / "Task1.zip", published_2023_layout())
    ids = synthrad_patient_ids(archive, "brain")
    chosen = choose_patients(ids, "synthrad2023", max_patients=6, patients=None, seed=42)
    table = patients_table(chosen, "synthrad2023")
    assert table["centre"].value_counts().to_dict() == {"A": 2, "B": 2, "C": 2}
    assert choose_patients(ids, "synthrad2023", max_patients=6, patients=None, seed=42) == chosen, "seeded"
    assert chosen != ids[:6], "not the first six (all of centre A)"


def test_synthrad2025_mha_layout_is_read_per_region(tmp_path: Path) -> None:
    members = [f"Task1/{region}/1{region}{centre}00{n}/{m}.mha"
               for region in ("AB", "HN", "TH") for centre in "AB" for n in (1, 2) for m in ("mr", "ct", "mask")]
    archive = _make_archive(tmp_path / "Task1.zip", members + ["Task1/HN/overview/1_HN_train.xlsx"])
    assert synthrad_patient_ids(archive, "HN", "synthrad2025") == ["1HNA001", "1HNA002", "1HNB001", "1HNB002"]
    written = extract_patient(archive, "TH", "1THB002", tmp_path / "out", challenge="synthrad2025")
    assert sorted(p.name for p in written.values()) == ["ct.mha", "mask.mha", "mr.mha"]
    assert written["mr"].read_bytes() == _content("Task1/TH/1THB002/mr.mha")
    with pytest.raises(ValueError, match=r"synthrad2025 region must be one of \('AB', 'HN', 'TH'\)"):
        synthrad_patient_ids(archive, "brain", "synthrad2025")
    with pytest.raises(ValueError, match="no brain patients.*mr.nii.gz"):
        synthrad_patient_ids(archive, "brain", "synthrad2023")


def test_the_overview_spreadsheet_in_the_archive_gives_the_centres(tmp_path: Path) -> None:
    """An overview workbook in the region's overview folder names each patient's centre; it is read
    from the zip (brain's, not pelvis's), and where it is unreadable the ids give the centres."""
    import io

    import pandas as pd

    from mrct.sources.synthrad import overview_centres

    members = published_2023_layout()
    brain = [m.split("/")[2] for m in members if m.startswith("Task1/brain/1B") and m.endswith("/mr.nii.gz")]
    names = {"A": "UMC Utrecht", "B": "Radboudumc", "C": "UMC Groningen"}
    workbook = io.BytesIO()
    with pd.ExcelWriter(workbook) as writer:
        pd.DataFrame({"ID": brain, "Center": [names[p[2]] for p in brain]}).to_excel(writer, sheet_name="MR", index=False)
    archive = tmp_path / "Task1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for member in members:
            zf.writestr(member, workbook.getvalue() if member.endswith("brain_train.xlsx") else _content(member))
    centres = overview_centres(archive, "brain")
    assert centres == {p: names[p[2]] for p in brain}
    assert overview_centres(archive, "pelvis") == {}  # its overview here is not a workbook: skipped
    chosen = choose_patients(synthrad_patient_ids(archive, "brain"), "synthrad2023", max_patients=6, patients=None,
                             seed=1, centres=centres)
    assert patients_table(chosen, "synthrad2023", centres)["centre"].value_counts().to_dict() == dict.fromkeys(
        names.values(), 2)
