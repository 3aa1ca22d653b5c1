"""mrct.sources.patients: the balanced, seeded choice of patients and patients.csv."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mrct.sources.patients import (
    PATIENT_COLUMNS,
    balanced_sample,
    centre_of,
    choose_patients,
    read_patients_table,
    write_patients_table,
)

# 60 brain patients of centre A, 30 of B, 5 of C: the sorted first 18 are all A.
IDS = [f"1BA{n:03d}" for n in range(1, 61)] + [f"1BB{n:03d}" for n in range(1, 31)] + [f"1BC{n:03d}" for n in range(1, 6)]


@pytest.mark.parametrize(("patient", "source", "centre"), [
    ("1BA001", "synthrad2023", "A"), ("1PC120", "synthrad2023", "C"), ("1HNB012", "synthrad2025", "B"),
    ("1ABA005", "synthrad2025", "A"), ("1THC001", "synthrad2025", "C"),
    ("demo001", "demo", ""), ("1BA001", "local", ""), ("patient7", "synthrad2023", ""),
])
def test_centre_of_reads_the_synthrad_id(patient: str, source: str, centre: str) -> None:
    assert centre_of(patient, source) == centre


def test_eighteen_of_three_centres_are_six_each() -> None:
    chosen = choose_patients(IDS, "synthrad2023", max_patients=18, patients=None, seed=42)
    counts = Counter(centre_of(p, "synthrad2023") for p in chosen)
    assert counts["C"] == 5, "a small centre gives all it has"
    assert sorted(counts.values()) == [5, 6, 7], "the others fill the rest, one apart at most"
    assert chosen == sorted(chosen) and len(set(chosen)) == 18


def test_sample_depends_on_the_seed_not_on_the_order_of_ids() -> None:
    a = choose_patients(IDS, "synthrad2023", max_patients=6, patients=None, seed=1)
    assert choose_patients(list(reversed(IDS)), "synthrad2023", max_patients=6, patients=None, seed=1) == a
    assert choose_patients(IDS, "synthrad2023", max_patients=6, patients=None, seed=2) != a


def test_remainder_goes_to_a_seeded_centre() -> None:
    centres = {p: centre_of(p, "synthrad2023") for p in IDS if not p.startswith("1BC")}
    extras = {Counter(centres[p] for p in balanced_sample(centres, 7, seed))["A"] for seed in range(20)}
    assert extras == {3, 4}, "over seeds, centre A is sometimes the one with the extra patient"


def test_unknown_centres_are_a_plain_seeded_sample() -> None:
    ids = [f"demo{n:03d}" for n in range(1, 11)]
    chosen = choose_patients(ids, "demo", max_patients=4, patients=None, seed=3)
    assert len(chosen) == 4 and chosen != ids[:4]
    assert choose_patients(ids, "demo", max_patients=None, patients=None, seed=3) == ids
    assert choose_patients(ids, "demo", max_patients=20, patients=None, seed=3) == ids


def test_explicit_patients_fix_the_set() -> None:
    assert choose_patients(IDS, "synthrad2023", max_patients=None, patients=["1BC002", "1BA010"], seed=0) == [
        "1BA010", "1BC002"]
    with pytest.raises(ValueError, match=r"dataset.patients names 1 patient\(s\).*1BX001"):
        choose_patients(IDS, "synthrad2023", max_patients=None, patients=["1BA001", "1BX001"], seed=0)
    with pytest.raises(ValueError, match="dataset.patients .* and dataset.max_patients .* are both set"):
        choose_patients(IDS, "synthrad2023", max_patients=6, patients=["1BA001", "1BB001"], seed=0)


def test_patients_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    write_patients_table(["demo002", "demo001"], "demo", path)
    table = read_patients_table(path)
    assert list(table.columns) == PATIENT_COLUMNS
    assert table.values.tolist() == [["demo001", "", "demo"], ["demo002", "", "demo"]]


def test_report_shows_the_patients_per_centre(tmp_path: Path) -> None:
    from mrct.report import patients_html

    path = tmp_path / "patients.csv"
    write_patients_table(["1BA001", "1BA007", "1BB003", "1BC010"], "synthrad2023", path)
    html = patients_html(read_patients_table(path))
    assert "The 4 patients of this run (source synthrad2023)" in html
    assert "<td>A</td><td>2</td>" in html and "<td>C</td><td>1</td>" in html
    assert "<td>1BB003</td><td>B</td><td>synthrad2023</td>" in html
    write_patients_table(["demo001"], "demo", path)
    assert "<td>unknown</td><td>1</td>" in patients_html(read_patients_table(path))


# -- centres from a table that comes with the data --------------------------------------------


def test_a_local_folders_spreadsheet_gives_the_centres_of_ids_that_say_none(tmp_path: Path, caplog) -> None:
    """Ids without a centre letter; the folder's spreadsheet names three sites: 6 drawn = 2 per site."""
    import pandas as pd

    from mrct.sources.centres import centres_in_folder
    from mrct.sources.patients import patients_table

    ids = [f"case{n:02d}" for n in range(12)]
    sites = ["Leiden", "Utrecht", "Groningen"]
    overview = tmp_path / "overview"
    overview.mkdir()
    # Headers as people write them; a second sheet without the columns; numbers as Excel stores them.
    with pd.ExcelWriter(overview / "patients.xlsx") as writer:
        pd.DataFrame({"Patient ID": ids, "Site ": [sites[n % 3] for n in range(12)]}).to_excel(writer, sheet_name="MR", index=False)
        pd.DataFrame({"Scanner": ["x"], "Field": [3.0]}).to_excel(writer, sheet_name="notes", index=False)
    (tmp_path / "broken.xlsx").write_bytes(b"not a workbook")  # skipped, with a warning naming it
    with caplog.at_level("INFO"):
        centres = centres_in_folder(tmp_path)
    assert centres == {p: sites[n % 3] for n, p in enumerate(ids)}
    assert "broken.xlsx: not read as a table of centres" in caplog.text
    chosen = choose_patients(ids, "local", max_patients=6, patients=None, seed=3, centres=centres)
    assert Counter(centres[p] for p in chosen) == {"Leiden": 2, "Utrecht": 2, "Groningen": 2}
    assert choose_patients(ids, "local", max_patients=6, patients=None, seed=3) != chosen  # no table: plain draw
    assert patients_table(chosen, "local", centres)["centre"].tolist() == [centres[p] for p in sorted(chosen)]


def test_the_table_comes_before_the_id_and_a_disagreement_is_logged(caplog) -> None:
    from mrct.sources.centres import centres_in_tables, report_disagreements
    from mrct.sources.patients import patient_centre

    csv = b"ID,Center\n1BA001,UMCU\n1BB002,B\n"
    centres = centres_in_tables([("overview.csv", csv)])
    assert patient_centre("1BA001", "synthrad2023", centres) == "UMCU"
    assert patient_centre("1BC003", "synthrad2023", centres) == "C"  # not in the table: the id's
    with caplog.at_level("WARNING"):
        report_disagreements(centres, {p: centre_of(p, "synthrad2023") for p in centres})
    assert "different centres for 1 patients (1BA001: 'UMCU' in the table, 'A' in the id)" in caplog.text
    assert centres_in_tables([("no_columns.csv", b"name,value\na,1\n")]) == {}
