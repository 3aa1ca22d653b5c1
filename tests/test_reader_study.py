"""The reader study's design: model choice, counts, halves, pairs, gaps, seeds, and the kit's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from reader_study_fixtures import (
    decode_uri,
    page_images,
    shown_pixels,
    write_finished_evaluation,
    write_selection_table,
)

from mrct.io.png import read_gray_png
from mrct.reader_study.design import (
    KEY_COLUMNS,
    ReaderStudySettings,
    default_min_gap,
    draw_study,
    order_showings,
)
from mrct.reader_study.kit import build_reader_study


def fake_slices(n: int, direction: str) -> pd.DataFrame:
    """Candidate slices without files: draw_study only carries the paths along."""
    return pd.DataFrame({
        "patient": [f"{direction}_p{i % 5}" for i in range(n)], "slice": list(range(n)),
        "real_png": [f"gt/{direction}/{i}.png" for i in range(n)],
        "synthetic_png": [f"pred/{direction}/{i}.png" for i in range(n)],
    })


def study_of(images_per_modality: int, seed: int = 0, min_gap: int | None = None, n_candidates: int = 50):
    settings = ReaderStudySettings(images_per_modality=images_per_modality, metric="psnr", min_gap=min_gap)
    slices = {d: fake_slices(n_candidates, d) for d in ("mr2ct", "ct2mr")}
    return draw_study(slices, {"mr2ct": "m1", "ct2mr": "m2"}, settings, seed)


@pytest.mark.parametrize("per_modality", [2, 8, 10, 40])
def test_counts_and_halves(per_modality: int) -> None:
    study = study_of(per_modality)
    assert len(study) == 2 * per_modality
    counts = study.groupby(["direction", "truth"]).size()
    for direction in ("mr2ct", "ct2mr"):
        assert counts[direction, "real"] == counts[direction, "synthetic"] == per_modality // 2
    # ground truth shows the real file, synthetic the model's output, each with its own model
    assert study.loc[study.truth == "real", "png"].str.startswith("gt/").all()
    assert study.loc[study.truth == "synthetic", "png"].str.startswith("pred/").all()
    assert (study.loc[study.direction == "mr2ct", "model"] == "m1").all()


def test_every_slice_shown_twice_once_real_once_synthetic() -> None:
    study = study_of(40)
    for _, showings in study.groupby(["direction", "patient", "slice"]):
        assert sorted(showings["truth"]) == ["real", "synthetic"]
    assert study["image_id"].is_unique


def test_each_half_holds_one_showing_of_every_slice_and_is_balanced() -> None:
    study = study_of(40)
    half = len(study) // 2
    first, second = study.iloc[:half], study.iloc[half:]
    keys = ["direction", "patient", "slice"]
    assert set(map(tuple, first[keys].values)) == set(map(tuple, second[keys].values))
    for direction in ("mr2ct", "ct2mr"):  # the half says nothing about truth
        own = first[first.direction == direction]
        assert (own.truth == "real").sum() == (own.truth == "synthetic").sum()


@pytest.mark.parametrize("min_gap", [1, 7, 20, 40])
def test_minimum_distance_between_the_two_showings(min_gap: int) -> None:
    study = study_of(40, min_gap=min_gap)  # 40 pairs in all
    gaps = study.reset_index().groupby(["direction", "patient", "slice"])["index"].agg(lambda p: p.max() - p.min())
    assert gaps.min() >= min_gap
    if min_gap == 40:  # the largest gap the halves allow: every pair exactly one half apart
        assert (gaps == 40).all()


def test_default_gap_is_a_quarter_of_the_sequence() -> None:
    study = study_of(40)
    gaps = study.reset_index().groupby(["direction", "patient", "slice"])["index"].agg(lambda p: p.max() - p.min())
    assert gaps.min() >= default_min_gap(40) == 20


def test_order_showings_is_a_permutation_and_checks_the_gap() -> None:
    first, second = order_showings(9, 9, np.random.default_rng(3))
    assert sorted([*first, *second]) == list(range(18))
    with pytest.raises(ValueError, match="min_gap: expected 1..9"):
        order_showings(9, 10, np.random.default_rng(3))


def test_same_seed_same_study_other_seed_other_study() -> None:
    a, b, c = study_of(20, seed=5), study_of(20, seed=5), study_of(20, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert list(a["image_id"]) != list(c["image_id"])
    assert list(a["png"]) != list(c["png"])


def test_ids_are_opaque_tokens() -> None:
    study = study_of(40)
    assert study["image_id"].str.fullmatch(r"[0-9a-f]{12}").all()
    # no trace of order: ids are not sorted with the showing order
    assert list(study["image_id"]) != sorted(study["image_id"])


def test_too_few_test_slices_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected at least 10 test slices for 20 images per modality, got 9"):
        study_of(20, n_candidates=9)
    with pytest.raises(ValueError, match="expected an even number"):
        ReaderStudySettings(images_per_modality=7, metric="psnr")


def test_kit_writes_page_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path)
    settings = ReaderStudySettings(images_per_modality=8, metric="psnr")
    html, key = tmp_path / "out/questionnaire.html", tmp_path / "out/key.csv"
    study = build_reader_study(**inputs, settings=settings, seed=1, questionnaire=html, key=key)
    table = pd.read_csv(key)
    assert list(table.columns) == KEY_COLUMNS
    assert len(table) == 16 and set(table["model"]) == {"skimage_photos"}  # the selection table's choice
    shown = page_images(html.read_text())
    assert [image["id"] for image in shown] == list(table["image_id"])  # the key is in showing order
    # the page shows the files' pixels in their reading window (CT: brain window from HU), re-encoded
    manifest = pd.read_csv(inputs["manifest_path"])
    for image, item in zip(shown, study.itertuples(), strict=True):
        expected = shown_pixels(item.png, item.direction, manifest, item.patient, item.slice)
        np.testing.assert_array_equal(decode_uri(image["src"]), expected)
        if item.direction == "ct2mr":  # MR in its stored window: the 8-bit file's own pixels
            np.testing.assert_array_equal(decode_uri(image["src"]), read_gray_png(item.png))
    # the model and the patients it was chosen on come from selection.csv: none of theirs is shown
    write_selection_table(tmp_path, "scratch", patients="t00")
    build_reader_study(**inputs, settings=settings, seed=1, questionnaire=html, key=key)
    shown_key = pd.read_csv(key)
    assert set(shown_key["model"]) == {"scratch"} and set(shown_key["patient"]) == {"t01"}


def test_kit_names_a_missing_prediction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path)
    victim = next((tmp_path / "results/predictions/skimage_photos/mr2ct").glob("*.png"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=r"skimage_photos/mr2ct: expected a prediction per test slice"):
        build_reader_study(**inputs, settings=ReaderStudySettings(8, "psnr"), seed=1,
                           questionnaire=tmp_path / "q.html", key=tmp_path / "k.csv")


def test_kit_rejects_images_of_another_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path)
    for path in (tmp_path / "results/predictions/skimage_photos/mr2ct").glob("*.png"):
        Image.new("L", (20, 20)).save(path)
    message = r"expected every reader-study image to be \((16|20), \1\) like .*, got \((?!\1)(16|20), \2\)"
    with pytest.raises(ValueError, match=message):
        build_reader_study(**inputs, settings=ReaderStudySettings(8, "psnr"), seed=1,
                           questionnaire=tmp_path / "q.html", key=tmp_path / "k.csv")


def test_report_section_shows_the_kit_but_not_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mrct.report import reader_study_counts, reader_study_kit_html

    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path)
    key = tmp_path / "key.csv"
    build_reader_study(**inputs, settings=ReaderStudySettings(8, "psnr"), seed=1,
                       questionnaire=tmp_path / "q.html", key=key)
    shot = tmp_path / "reader_study_1_start.png"
    Image.new("L", (8, 8), 128).save(shot)
    section = reader_study_kit_html(key, [shot])
    assert "questionnaire.html" in section and "Export answers" in section and "data/reader_study/" in section
    assert section.count("<img") == 1
    counts = reader_study_counts(pd.read_csv(key))
    assert set(counts["direction"]) == {"mr2ct", "ct2mr"} and (counts["images"] == 8).all()
    assert (counts["ground_truth"] == 4).all() and (counts["synthetic"] == 4).all() and (counts["slices"] == 4).all()
    assert "<td>skimage_photos</td><td>4</td><td>8</td><td>4</td><td>4</td>" in section
    table = pd.read_csv(key)
    leaked = [v for v in [*table["image_id"], *table["patient"].unique()] if v in section]
    assert not leaked, leaked
    assert "No reader-study questionnaire" in reader_study_kit_html(None, [])


def test_ct_is_shown_in_the_brain_window_and_real_and_synthetic_alike(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """16-bit slices: white (25 HU) and grey matter (38 HU) about 41 gray levels apart on the page.

    The predictions here are byte copies of the ground truth, so a real image and the synthetic
    image of the same slice must reach the page as the same pixels: one rendering for both.
    """
    from tiny_slices import brain_tissues

    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path, size=48, bits=16, content="noisy", leaky_encoding=False)
    manifest = pd.read_csv(inputs["manifest_path"])
    for folder in inputs["prediction_dirs"]:
        column = "ct_png" if folder.name == "mr2ct" else "mr_png"
        for rel in manifest.loc[manifest["split"] == "test", column]:
            (folder / Path(rel).name).write_bytes((tmp_path / rel).read_bytes())
    html, key = tmp_path / "q.html", tmp_path / "k.csv"
    study = build_reader_study(**inputs, settings=ReaderStudySettings(8, "psnr"), seed=2, questionnaire=html, key=key)
    pixels = [decode_uri(image["src"]) for image in page_images(html.read_text())]
    ct = study["direction"] == "mr2ct"
    labels = brain_tissues(48)  # the head without its per-slice shift of at most 1.5 pixels
    core = {t: ndimage.binary_erosion(labels == t, iterations=2) for t in ("white", "grey")}
    for index in np.flatnonzero(ct):
        shown = pixels[index].astype(float)
        contrast = shown[core["grey"]].mean() - shown[core["white"]].mean()
        assert contrast == pytest.approx(13 / 80 * 255, abs=6), contrast  # 41 gray levels
        item = study.iloc[index]
        np.testing.assert_array_equal(pixels[index], shown_pixels(item["png"], "mr2ct", manifest, item["patient"],
                                                                  item["slice"]))
    for _, pair in study.groupby(["direction", "patient", "slice"]):
        first, second = (pixels[i] for i in pair.index)
        np.testing.assert_array_equal(first, second)
    # another CT window changes the CT images only
    build_reader_study(**inputs, settings=ReaderStudySettings(8, "psnr", ct_window_hu=(-20.0, 180.0)), seed=2,
                       questionnaire=html, key=key)
    wide = [decode_uri(image["src"]) for image in page_images(html.read_text())]
    assert all(np.array_equal(a, b) != c for a, b, c in zip(pixels, wide, ct, strict=True))
    with pytest.raises(ValueError, match=r"ct_window_hu: expected low < high, got 40.0 .. 40.0"):
        ReaderStudySettings(8, "psnr", ct_window_hu=(40.0, 40.0))


def test_settings_take_the_ct_window_from_the_config() -> None:
    import yaml

    from mrct.config import validate_config
    from mrct.reader_study.kit import settings_from_config

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    validate_config(config)
    section = config["reader_study"]
    assert settings_from_config(section).ct_window_hu == (0.0, 80.0) == ReaderStudySettings(2, "psnr").ct_window_hu
    assert settings_from_config({**section, "ct_window_hu": [-20, 180]}).ct_window_hu == (-20.0, 180.0)
