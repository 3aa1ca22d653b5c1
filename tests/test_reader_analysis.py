"""Reader-study analysis: simulated readers with hand-computed answers, Lin's CCC, bad answer files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrct.reader_study.analysis import (
    AnswersError,
    agreement,
    analyse,
    ccc,
    ccc_cb,
    classification,
    read_all_answers,
    read_key,
    table_v,
    table_vi,
    write_analysis,
)

SLICES = {"mr2ct": [("p1", "3"), ("p1", "7"), ("p2", "4")], "ct2mr": [("p1", "3"), ("p2", "4"), ("p2", "9")]}


def make_key(tmp_path: Path, model: str = "scratch") -> Path:
    """Every slice twice (real and synthetic) with ids that do not reveal either."""
    rows, n = [], 0
    for direction, slices in SLICES.items():
        for patient, slice_ in slices:
            for truth in ("synthetic", "real"):
                n += 1
                rows.append({"image_id": f"q{n:03d}", "truth": truth, "direction": direction, "model": model,
                             "patient": patient, "slice": slice_})
    path = tmp_path / "key.csv"
    pd.DataFrame(rows).sample(frac=1, random_state=1).to_csv(path, index=False)
    return path


def write_answers(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    path = tmp_path / "answers" / name
    path.parent.mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=["reader", "image_id", "judged", "realism"]).to_csv(path, index=False)
    return path


def simulate(key: pd.DataFrame, reader: str, judged, realism) -> list[dict]:
    """A reader's answers: ``judged(row)`` and ``realism(row)`` decide per key row."""
    return [{"reader": reader, "image_id": row.image_id, "judged": judged(row), "realism": realism(row)}
            for row in key.itertuples()]


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return make_key(tmp_path)


# -- Lin's CCC -------------------------------------------------------------------------------


def test_ccc_by_hand() -> None:
    # x = 1,2,3 and y = 2,3,4: both variances 2/3, covariance 2/3, mean difference 1:
    # CCC = 2 (2/3) / (2/3 + 2/3 + 1) = 4/7, although Pearson's r is 1.
    assert ccc([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7)
    # x = 1,2,4 (mean 7/3, variance 14/9) and y = 2,3,3 (mean 8/3, variance 2/9), covariance 4/9:
    # CCC = (8/9) / (14/9 + 2/9 + 1/9) = 8/17
    assert ccc([1, 2, 4], [2, 3, 3]) == pytest.approx(8 / 17)
    assert ccc([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert ccc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(ccc([2, 2], [2, 2]))  # 0/0: undefined, not 1 or 0
    assert ccc([2, 2, 2], [1, 3, 2]) == 0.0


def test_ccc_against_independent_formulas() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(1, 5, size=30).astype(float)
        y = np.clip(x + rng.integers(-1, 3, size=30), 1, 4)
        # Lin (1989): CCC = r * C_b, the bias correction C_b = 2 / (v + 1/v + u^2) with
        # v = sx / sy and u = (mx - my) / sqrt(sx sy) (population moments).
        sx, sy = x.std(), y.std()
        v, u = sx / sy, (x.mean() - y.mean()) / math.sqrt(sx * sy)
        r = np.corrcoef(x, y)[0, 1]
        assert ccc(x, y) == pytest.approx(r * 2 / (v + 1 / v + u**2))
        # ... and CCC = 1 - E[(x - y)^2] / (sx^2 + sy^2 + (mx - my)^2).
        msd = np.mean((x - y) ** 2)
        assert ccc(x, y) == pytest.approx(1 - msd / (sx**2 + sy**2 + (x.mean() - y.mean()) ** 2))


def test_ccc_cb_r_and_ccc_by_hand() -> None:
    """Lin's C_b (the study's Table VI "accuracy") and CCC = r x C_b on hand-made ratings.

    x = 1,2,4 (mean 7/3, population variance 14/9) and y = 2,3,3 (mean 8/3, variance 2/9),
    covariance 4/9: r = (4/9) / sqrt(28/81) = 4 / sqrt(28); C_b = 2 sqrt(28)/9 / (17/9) = 2 sqrt(28) / 17;
    CCC = 8/17 = r x C_b.
    """
    x, y = [1, 2, 4], [2, 3, 3]
    assert ccc_cb(x, y) == pytest.approx(2 * math.sqrt(28) / 17)
    assert ccc(x, y) == pytest.approx(8 / 17) == pytest.approx(4 / math.sqrt(28) * ccc_cb(x, y))
    # equal means and spreads: C_b = 1 whatever the correlation (here r = -1)
    assert ccc_cb([1, 2, 3], [3, 2, 1]) == pytest.approx(1.0)
    # a shift of one rating: both variances 2/3, mean difference 1 -> C_b = (4/3) / (7/3) = 4/7 = CCC (r = 1)
    assert ccc_cb([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7)
    assert math.isnan(ccc_cb([2, 2, 2], [1, 3, 2])) and math.isnan(ccc_cb([1], [2]))
    with pytest.raises(ValueError, match="one length"):
        ccc_cb([1, 2, 3], [1, 2])


def test_a_reader_rating_at_random_has_c_b_near_1() -> None:
    """Why C_b is no classification accuracy: random ratings of both images agree in mean and spread."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, 5, 5000), rng.integers(1, 5, 5000)
    assert ccc_cb(x, y) > 0.98 and abs(np.corrcoef(x, y)[0, 1]) < 0.05


def test_ccc_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="one length"):
        ccc([1, 2, 3], [1, 2])


# -- simulated readers ------------------------------------------------------------------------


def test_reader_who_always_says_real(key_path: Path) -> None:
    key = read_key(key_path)
    answers = read_all_answers([write_answers(key_path.parent, "a.csv", simulate(
        key, "always_real", lambda r: "real", lambda r: 3 if r.truth == "real" else 2))], key, key_path)
    vi = table_vi(answers, key)
    assert list(vi["direction"]) == ["ct2mr", "mr2ct"]
    classes = classification(answers, key)
    assert list(classes["direction"]) == ["ct2mr", "mr2ct"] and (classes["n_images"] == 6).all()
    assert (classes["sensitivity"] == 0).all() and (classes["specificity"] == 1).all()
    assert (classes["classification_accuracy"] == 0.5).all()
    v = table_v(answers, key)
    assert (v["judged_real_pct"] == 100).all()
    assert set(v["source"]) == {"scratch", "ground truth"} and (v["n"] == 3).all()
    assert list(v.loc[v["source"] == "ground truth", "realism_mean"]) == [3, 3]
    # constant ratings: Pearson and C_b are undefined (NaN, not a number made up)
    assert vi["pearson"].isna().all() and vi["ccc_cb"].isna().all()


def test_perfect_reader(key_path: Path) -> None:
    key = read_key(key_path)
    answers = read_all_answers([write_answers(key_path.parent, "a.csv", simulate(
        key, "perfect", lambda r: r.truth, lambda r: 4 if r.truth == "real" else 1))], key, key_path)
    classes = classification(answers, key)
    assert (classes[["classification_accuracy", "sensitivity", "specificity"]] == 1).all().all()
    v = table_v(answers, key).set_index(["direction", "source"])
    assert v.loc[("mr2ct", "ground truth"), "judged_real_pct"] == 100
    assert v.loc[("mr2ct", "scratch"), "judged_real_pct"] == 0
    assert v.loc[("mr2ct", "scratch"), "realism_std"] == 0


def test_table_v_and_vi_by_hand(key_path: Path) -> None:
    """mr2ct ratings: synthetic 1, 2, 4 and real 2, 3, 3 for slices (p1,3), (p1,7), (p2,4)."""
    key = read_key(key_path)
    synthetic = {("p1", "3"): 1, ("p1", "7"): 2, ("p2", "4"): 4}
    real = {("p1", "3"): 2, ("p1", "7"): 3, ("p2", "4"): 3}

    def realism(r):
        if r.direction == "ct2mr":
            return 2
        return (synthetic if r.truth == "synthetic" else real)[(r.patient, str(r.slice))]

    # judged: the synthetic image of (p1,3) is spotted, every other image is called real
    def judged(r):
        return "synthetic" if (r.truth, r.patient, str(r.slice)) == ("synthetic", "p1", "3") else "real"

    answers = read_all_answers([write_answers(key_path.parent, "a.csv", simulate(key, "A", judged, realism))],
                               key, key_path)
    vi = table_vi(answers, key).set_index("direction").loc["mr2ct"]
    # Pearson of (1,2,4) vs (2,3,3): sum dxdy = 4/3, sum dx^2 = 14/3, sum dy^2 = 2/3 -> 4 / sqrt(28)
    assert vi["pearson"] == pytest.approx(4 / math.sqrt(28))
    # C_b: 2 sx sy / (sx^2 + sy^2 + (mx - my)^2) = 2 sqrt(28)/9 / (14/9 + 2/9 + 1/9) = 2 sqrt(28) / 17
    assert vi["ccc_cb"] == pytest.approx(2 * math.sqrt(28) / 17)
    assert vi["ccc"] == pytest.approx(8 / 17) == pytest.approx(vi["pearson"] * vi["ccc_cb"])
    assert vi["n_pairs"] == 3
    classes = classification(answers, key).set_index("direction").loc["mr2ct"]
    assert classes["sensitivity"] == pytest.approx(1 / 3) and classes["specificity"] == 1
    assert classes["classification_accuracy"] == pytest.approx(4 / 6)
    v = table_v(answers, key).set_index(["direction", "source"])
    assert v.loc[("mr2ct", "scratch"), "realism_mean"] == pytest.approx(7 / 3)
    assert v.loc[("mr2ct", "scratch"), "realism_std"] == pytest.approx(math.sqrt(7 / 3))  # ddof 1
    assert v.loc[("mr2ct", "scratch"), "judged_real_pct"] == pytest.approx(200 / 3)
    assert v.loc[("mr2ct", "ground truth"), "realism_mean"] == pytest.approx(8 / 3)


def test_two_readers_who_agree_exactly(key_path: Path) -> None:
    """Both rate a slice's synthetic image as its real one (CCC 1) and answer identically (kappa 1)."""
    key = read_key(key_path)
    level = {("p1", "3"): 1, ("p1", "7"): 2, ("p2", "4"): 4, ("p2", "9"): 3}

    def judged(r):
        return "real" if (r.patient, str(r.slice)) in {("p1", "3"), ("p2", "9")} else "synthetic"

    def realism(r):
        return level[(r.patient, str(r.slice))]

    files = [write_answers(key_path.parent, f"{name}.csv", simulate(key, name, judged, realism))
             for name in ("A", "B")]
    answers = read_all_answers(files, key, key_path)
    vi = table_vi(answers, key)
    assert len(vi) == 4 and np.allclose(vi["ccc"], 1) and np.allclose(vi["pearson"], 1)
    assert np.allclose(vi["ccc_cb"], 1)
    agree = agreement(answers, key)
    assert list(agree["direction"]) == ["ct2mr", "mr2ct"] and (agree["n"] == 6).all()
    assert np.allclose(agree["kappa_judged"], 1) and np.allclose(agree["kappa_realism_quadratic"], 1)


def test_kappa_by_hand(tmp_path: Path) -> None:
    """On the 6 mr2ct images, A says real for 3 and B for the same 3 minus one: po 5/6, pe 1/2."""
    key_path = make_key(tmp_path)
    key = read_key(key_path)
    mr = sorted(key.loc[key["direction"] == "mr2ct", "image_id"])
    a_real, b_real = set(mr[:3]), set(mr[:2])
    files = [write_answers(tmp_path, f"{name}.csv", simulate(
        key, name, lambda r, s=chosen: "real" if r.image_id in s else "synthetic", lambda r: 2))
        for name, chosen in (("A", a_real), ("B", b_real))]
    agree = agreement(read_all_answers(files, key, key_path), key).set_index("direction")
    # A: 3 real of 6, B: 2 real of 6 -> pe = (3/6)(2/6) + (3/6)(4/6) = 1/2; po = 5/6; kappa = 2/3
    assert agree.loc["mr2ct", "kappa_judged"] == pytest.approx(2 / 3)
    assert math.isnan(agree.loc["mr2ct", "kappa_realism_quadratic"])  # both constant: 0/0


def test_weighted_kappa_is_quadratic(tmp_path: Path) -> None:
    """One disagreement by 1 point and one by 3 points: quadratic weights count the second 9 times."""
    key_path = make_key(tmp_path)
    key = read_key(key_path)
    mr = sorted(key.loc[key["direction"] == "mr2ct", "image_id"])
    base = dict(zip(mr, [1, 2, 3, 4, 1, 4]))
    other = {**base, mr[0]: 2, mr[1]: 4}  # |1-2| = 1 and |2-4| = 2
    files = [write_answers(tmp_path, f"{name}.csv", simulate(
        key, name, lambda r: "real", lambda r, s=scores: s.get(r.image_id, 2)))
        for name, scores in (("A", base), ("B", other))]
    agree = agreement(read_all_answers(files, key, key_path), key).set_index("direction")
    a, b = np.array([base[i] for i in mr]), np.array([other[i] for i in mr])
    # quadratic-weighted kappa = 1 - sum w O / sum w E, with w = (i - j)^2 and E from the marginals
    observed = np.mean((a - b) ** 2)
    expected = np.mean((a[:, None] - b[None, :]) ** 2)
    assert agree.loc["mr2ct", "kappa_realism_quadratic"] == pytest.approx(1 - observed / expected)


# -- files: the whole analysis, and bad answers -------------------------------------------------


def test_no_answers_writes_empty_tables_and_how_to(key_path: Path, tmp_path: Path) -> None:
    outputs = {name: tmp_path / "out" / f"{name}.csv" for name in ("table_v", "table_vi", "classification", "agreement")}
    outputs["note"] = tmp_path / "out" / "note.md"
    write_analysis(key_path, [], "data/reader_study", outputs)
    assert list(pd.read_csv(outputs["table_v"]).columns) == [
        "direction", "source", "n", "realism_mean", "realism_std", "judged_real_pct"]
    assert list(pd.read_csv(outputs["table_vi"]).columns)[:5] == ["reader", "direction", "pearson", "ccc_cb", "ccc"]
    assert "accuracy" not in pd.read_csv(outputs["table_vi"]).columns
    assert list(pd.read_csv(outputs["classification"]).columns)[:5] == [
        "reader", "direction", "classification_accuracy", "sensitivity", "specificity"]
    assert len(pd.read_csv(outputs["table_v"])) == 0
    note = outputs["note"].read_text()
    assert "No reader-study answers" in note and "data/reader_study/" in note and "questionnaire.html" in note


def test_analyse_reports_readers(key_path: Path) -> None:
    key = read_key(key_path)
    paths = [write_answers(key_path.parent, f"{n}.csv", simulate(key, n, lambda r: r.truth, lambda r: 3))
             for n in ("A", "B")]
    results = analyse(key_path, paths, "data/reader_study")
    assert len(results["table_vi"]) == 4 and len(results["classification"]) == 4
    assert len(results["agreement"]) == 2 and len(results["table_v"]) == 4
    assert "2 reader(s) (A, B)" in results["note"]


def _good_rows(key_path: Path) -> list[dict]:
    return simulate(read_key(key_path), "A", lambda r: "real", lambda r: 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows[:-1], "answered 11 of 12 images"),
        (lambda rows: rows + rows[:1], "duplicates: A/q"),
        (lambda rows: rows[:-1] + [{**rows[-1], "image_id": "zz999"}], "1 image id.s. not in the key.*zz999"),
        (lambda rows: [{**r, "image_id": "x" + r["image_id"]} for r in rows], "another questionnaire"),
        (lambda rows: [{**rows[0], "judged": "fake"}] + rows[1:], "judged must be real or synthetic, got fake"),
        (lambda rows: [{**rows[0], "realism": 5}] + rows[1:], "realism must be an integer from 1 to 4, got 5"),
        (lambda rows: [{**rows[0], "realism": "2.5"}] + rows[1:], "from 1 to 4, got 2.5"),
        (lambda rows: [{**rows[0], "realism": "high"}] + rows[1:], "from 1 to 4, got high"),
        (lambda rows: [{**rows[0], "reader": ""}] + rows[1:], "reader is empty"),
    ],
)
def test_bad_answers_name_the_file(key_path: Path, change, message: str) -> None:
    path = write_answers(key_path.parent, "reader_x.csv", change(_good_rows(key_path)))
    with pytest.raises(AnswersError, match=message) as error:
        read_all_answers([path], read_key(key_path), key_path)
    assert str(path) in str(error.value)


def test_missing_column_and_empty_file_name_the_file(key_path: Path) -> None:
    path = key_path.parent / "no_realism.csv"
    pd.DataFrame(_good_rows(key_path)).drop(columns="realism").to_csv(path, index=False)
    with pytest.raises(AnswersError, match=r"no_realism.csv: expected columns .* missing realism"):
        read_all_answers([path], read_key(key_path), key_path)
    empty = key_path.parent / "empty.csv"
    empty.write_text("")
    with pytest.raises(AnswersError, match=r"empty.csv: expected a CSV answers file"):
        read_all_answers([empty], read_key(key_path), key_path)


def test_reader_in_two_files_is_an_error(key_path: Path) -> None:
    rows = _good_rows(key_path)
    paths = [write_answers(key_path.parent, name, rows) for name in ("a.csv", "b.csv")]
    with pytest.raises(AnswersError, match=r"reader 'A' appears in several answers files: a.csv, b.csv"):
        read_all_answers(paths, read_key(key_path), key_path)


def test_bad_key_is_an_error(tmp_path: Path) -> None:
    key_path = make_key(tmp_path)
    key = pd.read_csv(key_path)
    key.iloc[:-1].to_csv(key_path, index=False)  # one slice left with only one of its two images
    with pytest.raises(AnswersError, match=r"key.csv: every slice must appear once real and once synthetic"):
        read_key(key_path)


def test_spreadsheet_export_is_read(key_path: Path) -> None:
    """A byte-order mark, Windows line ends, capitals and spaces, as spreadsheet programs write them."""
    rows = _good_rows(key_path)
    text = "reader,image_id,judged,realism\r\n" + "".join(
        f"{r['reader']}, {r['image_id']},{r['judged'].upper()}, {r['realism']}\r\n" for r in rows)
    path = key_path.parent / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    answers = read_all_answers([path], read_key(key_path), key_path)
    assert len(answers) == 12 and set(answers["judged"]) == {"real"} and set(answers["realism"]) == {2}
