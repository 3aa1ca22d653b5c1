"""The questionnaire in a real headless browser: Debian's Chromium driven by Playwright.

A reader answers every image (half by keyboard, half by mouse), reloads the page half way and
resumes, goes back once and changes an answer, reloads again and finds every answer kept, then
exports the CSV. The CSV must hold exactly what was answered, in the interface's columns, and
the analysis (mrct.reader_study.analysis) must read it as it is.

Playwright's own browser download is never used (``playwright install`` fetches from the
internet); the test launches /usr/bin/chromium and is skipped, naming the missing part, when
Chromium or the Playwright package is absent (``.ci/run`` installs Chromium first).
The slices are 16-bit heads in HU (``tiny_slices.brain_tissues``), as the pipeline stores them:
every CT image Chromium decodes must be the brain-window rendering and show white and grey matter
about 41 gray levels apart. Set MRCT_READER_STUDY_SCREENSHOTS=<folder> to keep the screenshots
(docs/img/ holds a set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reader_study_fixtures import shown_pixels, write_finished_evaluation
from scipy import ndimage
from tiny_slices import brain_tissues

from mrct.reader_study.analysis import classification, read_all_answers, read_key
from mrct.reader_study.design import ReaderStudySettings
from mrct.reader_study.kit import build_reader_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
READER = "Dr Test, MD"  # a comma, so the export must quote the field


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is missing: no {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the Playwright package is missing (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def planned_answer(i: int) -> tuple[str, int]:
    return ("real" if i % 3 else "synthetic"), i % 4 + 1


def answer_current(page, i: int) -> None:
    judged, realism = planned_answer(i)
    if i % 2 == 0:  # keyboard
        page.keyboard.press("r" if judged == "real" else "s")
        page.keyboard.press(str(realism))
    else:  # mouse
        page.click(f"button.judge[data-value={judged}]")
        page.click(f"button.realism[data-value='{realism}']")


def position(page) -> str:
    return page.text_content("#position")


def shoot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"reader_study_{name}.png"))


SIZE = 64


def decoded_slice(page) -> np.ndarray:
    """The gray levels of the image on screen as Chromium decoded them (red channel of a canvas)."""
    decoded = page.evaluate("""() => { const img = document.getElementById('slice');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data); }""")
    return np.array(decoded, dtype=np.uint8).reshape(SIZE, SIZE, 4)[..., 0]


def check_shown(page, item, manifest: pd.DataFrame) -> None:
    """The image on screen is the file in its reading window; CT shows grey against white matter."""
    shown = decoded_slice(page)
    np.testing.assert_array_equal(shown, shown_pixels(item.png, item.direction, manifest, item.patient, item.slice))
    if item.direction == "mr2ct":
        labels = brain_tissues(SIZE)
        grey, white = (ndimage.binary_erosion(labels == t, iterations=2) for t in ("grey", "white"))
        contrast = shown[grey].mean() - shown[white].mean()
        assert contrast > 30, f"grey - white matter: {contrast:.1f} gray levels (13 HU in W80 is 41)"


def test_questionnaire_in_chromium(browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path, size=SIZE, bits=16, content="noisy")
    manifest = pd.read_csv(inputs["manifest_path"])
    html, key = tmp_path / "questionnaire.html", tmp_path / "key.csv"
    for seed in range(3, 100):  # the first seed whose first image is CT: the first screenshot shows one
        study = build_reader_study(**inputs, settings=ReaderStudySettings(8, "psnr"), seed=seed, questionnaire=html,
                                   key=key)
        if study["direction"].iloc[0] == "mr2ct":
            break
    n = len(study)
    shots = tmp_path / "shots"
    shots.mkdir()

    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(html.as_uri())
    assert position(page) == f"Image 1 of {n}"
    # gray levels untouched: nearest-neighbour at an integer zoom, no CSS filter, and the pixels the
    # browser decoded are the file's own
    style = page.evaluate("() => { const s = getComputedStyle(document.getElementById('slice'));"
                          " return [s.imageRendering, s.filter]; }")
    assert style == ["pixelated", "none"]
    width = page.evaluate("() => document.getElementById('slice').width")
    assert width % SIZE == 0 and width >= SIZE * 4
    assert page.evaluate("() => document.body.scrollHeight <= window.innerHeight")  # all in view
    check_shown(page, study.iloc[0], manifest)
    shoot(page, shots, "1_start")

    page.fill("#reader", READER)
    page.click("#stage")  # leave the name field, so keys answer
    for i in range(n):
        if i == n // 2:  # close and resume half way
            page.reload()
            assert position(page) == f"Image {i + 1} of {n}"
            assert page.text_content("#answered") == f"{i} answered"
            assert page.input_value("#reader") == READER
        assert position(page) == f"Image {i + 1} of {n}"
        check_shown(page, study.iloc[i], manifest)
        answer_current(page, i)
        if i == 2:
            shoot(page, shots, "2_answering")
    assert page.text_content("#answered") == f"{n} answered"
    assert "All images answered" in page.text_content("#done")

    # go back (button and arrow key) and change one answer
    changed = 3
    page.click("#back")
    for _ in range(n - 2 - changed):
        page.keyboard.press("ArrowLeft")
    assert position(page) == f"Image {changed + 1} of {n}"
    old = planned_answer(changed)
    new = ("synthetic" if old[0] == "real" else "real", 4 if old[1] != 4 else 1)
    page.keyboard.press(new[0][0])
    page.click(f"button.realism[data-value='{new[1]}']")
    assert position(page) == f"Image {changed + 1} of {n}"  # changing an answer does not move on
    shoot(page, shots, "3_changed")

    page.reload()
    assert position(page) == f"Image {changed + 1} of {n}"
    assert page.text_content("#answered") == f"{n} answered"
    chosen = page.eval_on_selector_all("button.chosen", "bs => bs.map(b => b.dataset.value)")
    assert chosen == [new[0], str(new[1])]
    assert page.evaluate("() => document.getElementById('progress-inner').style.width") == "100%"

    with page.expect_download() as download_info:
        page.click("#export")
    download = download_info.value
    target = tmp_path / "answers.csv"
    download.save_as(target)
    assert download.suggested_filename == "answers_Dr_Test_MD.csv"
    header = target.read_text().splitlines()[0]
    assert header == "reader,image_id,judged,realism"
    answers = pd.read_csv(target)
    assert (answers["reader"] == READER).all()
    expected = {image_id: planned_answer(i) for i, image_id in enumerate(study["image_id"])}
    expected[study["image_id"].iloc[changed]] = new
    got = {row.image_id: (row.judged, int(row.realism)) for row in answers.itertuples()}
    assert got == expected
    assert list(answers["image_id"]) == list(study["image_id"])
    # the analysis reads the exported file as it is: classification accuracy per direction as answered
    key_table = read_key(key)
    table = classification(read_all_answers([target], key_table, key), key_table).set_index("direction")
    for direction, own in study.groupby("direction"):
        hits = [expected[row.image_id][0] == row.truth for row in own.itertuples()]
        assert table.loc[direction, "classification_accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert not errors, errors
    assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    context.close()

    keep = os.environ.get("MRCT_READER_STUDY_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in sorted(shots.glob("*.png")):
            shutil.copy(shot, Path(keep) / shot.name)


def test_two_studies_keep_their_answers_apart(browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers are stored per study: another questionnaire at the same place starts empty."""
    monkeypatch.chdir(tmp_path)
    inputs = write_finished_evaluation(tmp_path)
    html = tmp_path / "questionnaire.html"
    build_reader_study(**inputs, settings=ReaderStudySettings(4, "psnr"), seed=1, questionnaire=html,
                       key=tmp_path / "k.csv")
    page = browser.new_context().new_page()
    page.goto(html.as_uri())
    page.keyboard.press("r")
    page.keyboard.press("2")
    assert page.text_content("#answered") == "1 answered"
    build_reader_study(**inputs, settings=ReaderStudySettings(4, "psnr"), seed=2, questionnaire=html,
                       key=tmp_path / "k.csv")
    page.reload()
    assert page.text_content("#answered") == "0 answered"
