"""Nothing in questionnaire.html reveals the key.

An attacker who reads only the page sees, per image, its position, its id and its data: URI (and
so the PNG's bytes, length and chunks). A random forest trained on those features, scored by
5-fold cross-validation, must do no better than chance at telling synthetic from real. The same
attacker must succeed on pages a careless kit would write (original files inlined; or pixels
re-encoded with an ordinary compressing PNG writer): that shows it is able to find a leak.
"""

from __future__ import annotations

import base64
import io
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reader_study_fixtures import (
    MODELS,
    decode_uri,
    page_images,
    shown_pixels,
    write_finished_evaluation,
)
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score

from mrct.reader_study.design import ReaderStudySettings
from mrct.reader_study.encoding import data_uri, encode_gray_png, png_chunks
from mrct.reader_study.kit import build_reader_study

B64 = string.ascii_letters + string.digits + "+/"
CHUNK_TYPES = ["IHDR", "IDAT", "IEND", "tEXt", "zTXt", "iTXt", "pHYs", "gAMA", "sRGB", "iCCP", "PLTE"]


def container_features(position: int, image_id: str, uri: str) -> list[float]:
    """Everything but the pixel values: position, id, lengths, chunk layout, header fields."""
    png = base64.b64decode(uri.split(",", 1)[1])
    chunks = png_chunks(png)
    per_type = [sum(n for t, n in chunks if t == kind) for kind in CHUNK_TYPES]
    counts = [sum(t == kind for t, _ in chunks) for kind in CHUNK_TYPES]
    ihdr = list(png[16:29])  # width, height, bit depth, colour type, compression, filter, interlace
    id_digits = [int(c, 16) for c in image_id[:12].ljust(12, "0")] if re.fullmatch(r"[0-9a-f]+", image_id) else [0] * 12
    return [position, position % 2, len(uri), len(png), len(chunks), *per_type, *counts, *ihdr, *id_digits]


def byte_features(position: int, image_id: str, uri: str) -> list[float]:
    """The container features plus the histogram of the URI's base64 characters."""
    payload = uri.split(",", 1)[1]
    histogram = np.array([payload.count(c) for c in B64], dtype=float) / max(len(payload), 1)
    return container_features(position, image_id, uri) + list(histogram)


def attack(ids: list[str], uris: list[str], truth: pd.Series, features=byte_features, seed: int = 0) -> float:
    """Cross-validated accuracy of a random forest telling synthetic from real."""
    x = np.array([features(i, image_id, uri) for i, (image_id, uri) in enumerate(zip(ids, uris, strict=True))])
    y = (truth == "synthetic").to_numpy()
    forest = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(forest, x, y, cv=folds, scoring="accuracy").mean())


@pytest.fixture(scope="module")
def big_study(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """600 images (150 slices per direction) whose predictions are real slices saved differently.

    16-bit slices of a head in HU, CT shown in the brain window, as the pipeline makes them.
    """
    root = tmp_path_factory.mktemp("blind")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        inputs = write_finished_evaluation(root, n_test_patients=10, n_slices=20, content="resampled", bits=16)
        html, key = root / "questionnaire.html", root / "key.csv"
        study = build_reader_study(**inputs, settings=ReaderStudySettings(300, "psnr"), seed=7,
                                   questionnaire=html, key=key)
        study["png"] = [str(root / p) for p in study["png"]]
    page = html.read_text()
    return {"study": study, "page": page, "images": page_images(page), "key": pd.read_csv(key),
            "manifest": pd.read_csv(inputs["manifest_path"])}


def test_attacker_on_the_page_does_no_better_than_chance(big_study: dict) -> None:
    images, study = big_study["images"], big_study["study"]
    assert len(images) == 600
    accuracy = attack([i["id"] for i in images], [i["src"] for i in images], study["truth"])
    # 600 images: chance is 0.5 with a standard error of about 0.02
    assert abs(accuracy - 0.5) < 0.08, accuracy


def test_attacker_finds_the_leak_of_a_careless_kit(big_study: dict) -> None:
    """Inlining the files as they are (RGB predictions with a text chunk) gives the key away."""
    study = big_study["study"]
    naive = [data_uri(Path(p).read_bytes()) for p in study["png"]]
    assert attack(list(study["image_id"]), naive, study["truth"]) > 0.95


def test_byte_size_carries_no_signal_even_when_synthetic_images_compress_better(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blurred predictions compress better: a compressing writer leaks it, the kit's does not."""
    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path, n_test_patients=6, n_slices=20, content="smooth", size=24, bits=16)
    study = build_reader_study(**inputs, settings=ReaderStudySettings(200, "psnr"), seed=11,
                               questionnaire=tmp_path / "q.html", key=tmp_path / "k.csv")
    images = page_images((tmp_path / "q.html").read_text())
    ids, uris = [i["id"] for i in images], [i["src"] for i in images]
    assert abs(attack(ids, uris, study["truth"], features=container_features) - 0.5) < 0.1
    assert len(set(map(len, uris))) == 1

    def pillow_png(uri: str) -> str:  # the same shown pixels, no metadata, but compressed
        buffer = io.BytesIO()
        Image.fromarray(decode_uri(uri)).save(buffer, format="PNG")
        return data_uri(buffer.getvalue())

    compressed = [pillow_png(u) for u in uris]
    assert attack(ids, compressed, study["truth"], features=container_features) > 0.9


def test_every_image_has_the_same_bytes_outside_its_pixels(big_study: dict) -> None:
    pngs = [base64.b64decode(i["src"].split(",", 1)[1]) for i in big_study["images"]]
    assert len({len(p) for p in pngs}) == 1
    assert len({tuple(png_chunks(p)) for p in pngs}) == 1
    assert png_chunks(pngs[0]) == [("IHDR", 13), ("IDAT", len(pngs[0]) - 8 - 25 - 12 - 12), ("IEND", 0)]
    assert len({p[:33] for p in pngs}) == 1  # signature and IHDR: identical


def test_the_page_shows_the_original_pixels_in_their_reading_window(big_study: dict) -> None:
    study, manifest = big_study["study"], big_study["manifest"]
    for image, item in zip(big_study["images"][:50], study.head(50).itertuples(), strict=True):
        expected = shown_pixels(item.png, item.direction, manifest, item.patient, item.slice)
        np.testing.assert_array_equal(decode_uri(image["src"]), expected)


def test_no_name_of_file_model_patient_or_direction_in_the_page(big_study: dict) -> None:
    page, key = big_study["page"], big_study["key"]
    # base64 payloads hold random letters; look for names in everything else
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page)
    forbidden = {*MODELS, "mr2ct", "ct2mr", ".png", "results/", "slices", "predictions", "truth",
                 *key["patient"].astype(str)}
    forbidden |= {Path(p).stem for p in big_study["study"]["png"]}
    found = sorted(word for word in forbidden if word in text)
    assert not found, found
    assert text.count("<img") == 1 and re.search(r'<img id="slice" alt=""', text)
    assert re.findall(r'"id":"([^"]+)"', text) == list(key["image_id"])
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in key["image_id"])
    assert "http" not in text.replace("http-equiv", "")  # no network
    assert len(re.findall(r"data:", text)) == len(key)


def test_the_encoder_round_trips_and_checks_its_input() -> None:
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 70000 // 3), (256, 256), (17, 5)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        with Image.open(io.BytesIO(encode_gray_png(pixels))) as image:
            assert image.mode == "L"
            np.testing.assert_array_equal(np.asarray(image), pixels)
    noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    assert len(encode_gray_png(np.zeros((64, 64), np.uint8))) == len(encode_gray_png(noise))
    with pytest.raises(ValueError, match="expected a 2-D uint8 image, got shape"):
        encode_gray_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="dtype float64"):
        encode_gray_png(np.zeros((4, 4)))
