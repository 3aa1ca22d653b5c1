"""The report at the study's shape: 19 models, 18 patients, two directions, every figure it embeds.

Tiny slices, but every figure is rendered by the package's own plotting functions at the size the
pipeline renders it (the figure's size in inches does not depend on the slices' size), so the
page's size is what the study's report would weigh. The checks: the page stays under the size
budget; the summary ranks the models as the metric tables do, and its differences are the
significance table's; every per-patient QA figure is folded except the flagged patients'; and
the page still loads nothing from elsewhere.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from mrct.evaluation.figures import (
    figure_models,
    loss_curves,
    metric_distributions,
    save_figure,
    translation_grid,
)
from mrct.evaluation.forest import RANKING_METRIC, direction_forest_plot, read_replicates, read_significance
from mrct.evaluation.hu_metrics import HU_METRICS, VOLUME_METRICS
from mrct.evaluation.latent import MODALITIES, plot_embeddings, plot_grid
from mrct.evaluation.latent_joint import plot_joint
from mrct.evaluation.metrics import IMAGE_METRICS, MASKED_METRICS
from mrct.evaluation.significance import significance_table
from mrct.evaluation.tables import format_value, summarize
from mrct.models.registry import load_zoo_registry
from mrct.preprocess.qa import registration_figure
from mrct.preprocess.registration_qa import QA_COLUMNS, read_registration_qa, review_order
from mrct.report import ReportInputs, build_report
from mrct.report_images import (
    DEFAULT_QA_PATIENTS,
    DISPLAY_WIDTH,
    SIZE_BUDGET_MB,
    check_size,
    display_png,
    qa_figures_html,
)

MODELS = ["scratch", *load_zoo_registry()]  # 19 models
PATIENTS = [f"p{i:02d}" for i in range(18)]
FLAGGED = {"p03": "dice_head 0.41 < 0.8", "p11": "nmi 1.02 < 1.1"}
SLICES_PER_PATIENT = 2
QA_BOUNDS = {"min_peak_drop": 0.35, "max_nearby_gain": 0.0, "min_dice": 0.9, "min_nmi": None}
SIZE = 32


class Page(HTMLParser):
    """The summary tables' rows, the QA <details> (open?, patient) and every image and URL."""

    def __init__(self) -> None:
        super().__init__()
        self.summary_rows: list[list[str]] = []
        self.qa: list[tuple[bool, str]] = []
        self.images_in_qa = 0
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()
        self._in_summary_table = self._in_qa = self._in_qa_summary = False
        self._row: list[str] | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.add(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]
        if tag == "img":
            self.images.append(values.get("src") or "")
            self.images_in_qa += self._in_qa
        if tag == "table" and values.get("class") == "summary":
            self._in_summary_table = True
        if self._in_summary_table and tag == "tr":
            self._row = []
        if self._row is not None and tag == "td":
            self._cell = ""
        if tag == "details" and values.get("class") == "qa":
            self._in_qa = True
            self.qa.append(("open" in values, ""))
        if self._in_qa and tag == "summary":
            self._in_qa_summary = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        if tag == "tr" and self._row:
            self.summary_rows.append(self._row)
            self._row = None
        if tag == "table":
            self._in_summary_table = False
        if tag == "summary":
            self._in_qa_summary = False
        if tag == "details":
            self._in_qa = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data
        if self._in_qa_summary:
            is_open, text = self.qa[-1]
            self.qa[-1] = (is_open, text + data)


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _slice_metrics(rng: np.random.Generator) -> pd.DataFrame:
    """Per-slice metrics: each model a true effect on top of a per-patient level, plus noise."""
    effects = dict(zip(MODELS, np.linspace(-0.03, 0.06, len(MODELS)), strict=True))
    effects["scratch"] = 0.0
    level = {p: rng.normal(0, 0.03) for p in PATIENTS}
    rows = []
    for model in MODELS:
        for direction in ("mr2ct", "ct2mr"):
            for i, patient in enumerate(PATIENTS):
                for z in range(SLICES_PER_PATIENT):
                    base = 0.7 + level[patient] + effects[model] + rng.normal(0, 0.02)
                    row = {"model": model, "patient": patient, "slice": 10 * i + z, "direction": direction}
                    for metric in [*IMAGE_METRICS, *MASKED_METRICS]:
                        row[metric] = base * (40 if metric.startswith("psnr") else 1)
                        if metric.startswith(("mae", "mse", "rmse")):
                            row[metric] = 30 * (1.2 - base)
                    for metric in HU_METRICS:
                        row[metric] = (120 * (1.2 - base)) if direction == "mr2ct" else np.nan
                    rows.append(row)
    return pd.DataFrame(rows)


def _volumes(slices: pd.DataFrame) -> pd.DataFrame:
    means = slices[slices["direction"] == "mr2ct"].groupby(["model", "patient"])["ssim_masked"].mean().reset_index()
    volumes = means.assign(mae_hu=300 * (1.2 - means["ssim_masked"]), psnr_hu=40 * means["ssim_masked"],
                           ssim_hu=means["ssim_masked"])
    # The other volume metrics (MS-SSIM, tissue Dice and HD95) follow the same per-patient quality.
    for metric in VOLUME_METRICS:
        if metric not in volumes:
            volumes[metric] = means["ssim_masked"] if not metric.startswith("hd95") else 10 * (1 - means["ssim_masked"])
    return volumes[["model", "patient", *VOLUME_METRICS]]


def _replicates(slices: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for (direction, model), own in slices.groupby(["direction", "model"]):
        for metric in ("ssim_masked", "psnr_masked", "mae_masked"):
            rows.append({"direction": direction, "metric": metric, "model": model, "n_replicates": 3,
                         "mean": float(own[metric].mean()), "sd_between_replicates": float(abs(rng.normal(0, 0.004)))})
    return pd.DataFrame(rows)


def _manifest_and_predictions(root: Path, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for patient in PATIENTS:
        for z in range(SLICES_PER_PATIENT):
            name = f"{patient}_z{z:03d}.png"
            ct = rng.integers(0, 256, (SIZE, SIZE))
            paths = {k: _png(root / "slices" / patient / k / name, v) for k, v in {"mr": 255 - ct, "ct": ct}.items()}
            rows.append({"patient": patient, "slice": z, "split": "test", "mr_png": str(paths["mr"]),
                         "ct_png": str(paths["ct"]), "synthetic": True})
    manifest = pd.DataFrame(rows)
    for model in MODELS:
        for direction in ("mr2ct", "ct2mr"):
            for name in manifest["ct_png"].map(lambda p: Path(p).name):
                _png(root / "pred" / model / direction / name, rng.integers(0, 256, (SIZE, SIZE)))
    return manifest


def _qa_figures(root: Path, rng: np.random.Generator) -> list[Path]:
    """A registration QA figure as rule register draws it, for each patient (one drawing, copied)."""
    volume = np.cumsum(rng.normal(0, 1, (64, 80, 64)), axis=2).astype(np.float32)
    ct = sitk.GetImageFromArray(volume * 40)
    mr = sitk.GetImageFromArray(volume + rng.normal(0, 0.5, volume.shape).astype(np.float32))
    mask = sitk.GetImageFromArray((np.abs(volume) < 6).astype(np.uint8))
    first = root / "pre" / PATIENTS[0] / "qa.png"
    first.parent.mkdir(parents=True)
    registration_figure(ct, mr, mask, "QA", first)
    paths = [first]
    for patient in PATIENTS[1:]:
        (root / "pre" / patient).mkdir()
        paths.append(Path(shutil.copy(first, root / "pre" / patient / "qa.png")))
    return paths


def _latent_figures(root: Path, rng: np.random.Generator) -> tuple[Path, list[Path], list[Path]]:
    n = len(PATIENTS) * SLICES_PER_PATIENT
    files, plots = {}, []
    for model in MODELS:
        embeddings = {f"{m}_{g}": rng.normal(0, 1, (2 * n, 2)) for m in ("tsne", "umap") for g in ("mr2ct", "ct2mr")}
        files[model] = root / "latent" / f"{model}.npz"
        files[model].parent.mkdir(exist_ok=True)
        np.savez(files[model], modality=np.repeat(np.array(MODALITIES), n), **embeddings)
    for method in ("tsne", "umap"):  # every model's own figure is the same drawing: draw one, copy it
        embeddings = {k: v for k, v in np.load(files["scratch"]).items() if k.startswith(method)}
        first = root / "latent" / f"scratch_{method}.png"
        save_figure(plot_embeddings(embeddings, method, n, "scratch"), first)
        plots += [first] + [Path(shutil.copy(first, root / "latent" / f"{m}_{method}.png")) for m in MODELS[1:]]
    grid = root / "latent" / "grid.png"
    save_figure(plot_grid(files), grid)
    joint = []
    frame = pd.DataFrame([{"model": m, "generator": g, "method": method, "modality": mod, "x": x, "y": y}
                          for m in MODELS for g in ("mr2ct", "ct2mr") for method in ("tsne", "umap")
                          for mod in MODALITIES for x, y in rng.normal(0, 1, (n, 2))])
    for method in ("tsne", "umap"):
        joint.append(root / "latent" / f"joint_{method}.png")
        save_figure(plot_joint(frame, method), joint[-1])
    return grid, plots, joint


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> ReportInputs:
    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(7)
    slices = _slice_metrics(rng)
    manifest = _manifest_and_predictions(root, rng)
    manifest.to_csv(root / "manifest.csv", index=False)
    tables = {}
    for direction in ("mr2ct", "ct2mr"):
        tables[direction] = root / f"metrics_{direction}.csv"
        summarize(slices, MODELS, direction).to_csv(tables[direction], index=False)
    significance_table(slices, MODELS, n_bootstrap=200, units=("patient",), volumes=_volumes(slices)).to_csv(
        root / "significance.csv", index=False)
    _replicates(slices, rng).to_csv(root / "replicates.csv", index=False)
    significance, replicates = read_significance(root / "significance.csv"), read_replicates(root / "replicates.csv")
    forest = {d: root / "fig" / f"forest_{d}.png" for d in ("mr2ct", "ct2mr")}
    for direction, path in forest.items():
        save_figure(direction_forest_plot(significance, replicates, direction), path)
    figures = []
    for direction in ("mr2ct", "ct2mr"):
        shown = figure_models(slices, MODELS, direction, "scratch", 4)
        figures.append(root / "fig" / f"translation_{direction}.png")
        save_figure(translation_grid(manifest, {m: root / "pred" / m for m in shown}, direction, 4, len(MODELS)),
                    figures[-1])
    figures.append(root / "fig" / "distributions.png")
    save_figure(metric_distributions(slices, MODELS), figures[-1])
    logs = {m: pd.DataFrame({"epoch": np.arange(1, 201), "loss_G": np.linspace(3, 1, 200), "loss_D": np.linspace(.5, .2, 200)})
            for m in MODELS}
    figures.append(root / "fig" / "losses.png")
    save_figure(loss_curves(logs), figures[-1])
    qa = pd.DataFrame([{"patient": p, "dice_head": 0.95, "nmi": 1.3, "head_in_fov": 1.0,
                        "peak_drop": rng.uniform(0.36, 0.6), "nearby_gain": rng.uniform(-0.5, -0.1),
                        "flagged": p in FLAGGED, "reason": FLAGGED.get(p, "")} for p in PATIENTS], columns=QA_COLUMNS)
    qa.to_csv(root / "registration_qa.csv", index=False)
    grid, plots, joint = _latent_figures(root, rng)
    return ReportInputs(manifest=root / "manifest.csv", metric_tables=tables, significance=root / "significance.csv",
                        replicates=root / "replicates.csv", forest_plots=forest, qa_images=_qa_figures(root, rng),
                        registration_qa=root / "registration_qa.csv", figures=figures, latent_grid=grid,
                        latent_plots=plots, latent_joint=joint,
                        config={"models": MODELS, "preprocess": {"registration_qa": QA_BOUNDS}})


@pytest.fixture(scope="module")
def page(study: ReportInputs) -> str:
    return build_report(study)


def test_report_at_the_study_shape_is_under_the_size_budget(page: str) -> None:
    size = check_size(page)
    assert 1 < size < SIZE_BUDGET_MB, f"report of {len(MODELS)} models and {len(PATIENTS)} patients: {size:.1f} MB"
    parser = Page()
    parser.feed(page)
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert all(url.startswith(("data:", "#")) for url in parser.urls)
    assert not parser.tags & {"script", "link", "iframe", "object", "embed"}


def test_images_are_encoded_at_display_width_or_kept_when_smaller(tmp_path: Path) -> None:
    # A detailed wide figure: scaled down to the column's width, fewer bytes, RGB without alpha.
    noise = np.random.default_rng(0).integers(0, 256, (400, 2400, 4))
    wide = _png(tmp_path / "wide.png", np.concatenate([noise[..., :3], np.full_like(noise[..., :1], 255)], axis=-1))
    with Image.open(io.BytesIO(display_png(wide))) as image:
        assert image.size == (DISPLAY_WIDTH, 195) and image.mode == "RGB"
    assert len(display_png(wide)) < wide.stat().st_size
    # Big flat blocks (small slices magnified): scaling would blur them into more bytes; kept as they are.
    blocks = np.kron(np.random.default_rng(0).integers(0, 256, (20, 60)), np.ones((40, 40)))
    blocky = _png(tmp_path / "blocky.png", blocks)
    assert display_png(blocky) == blocky.read_bytes()
    # A plot of few colours: an exact palette, every pixel unchanged.
    few = _png(tmp_path / "few.png", np.stack([blocks % 4 * 60, 255 - blocks % 4 * 60, blocks % 2 * 100,
                                               np.full_like(blocks, 255)], axis=-1))
    with Image.open(io.BytesIO(display_png(few, max_width=4000))) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), np.asarray(Image.open(few).convert("RGB")))


def _ranked(path: Path) -> list[str]:
    table = pd.read_csv(path)
    return list(table.sort_values(f"{RANKING_METRIC}_avg", ascending=False, kind="stable")["model"])


def test_summary_ranks_the_models_as_the_tables_do(study: ReportInputs, page: str) -> None:
    parser = Page()
    parser.feed(page)
    rows = parser.summary_rows
    assert len(rows) == 2 * len(MODELS)
    significance = pd.read_csv(study.significance)
    for i, direction in enumerate(("mr2ct", "ct2mr")):
        own = rows[i * len(MODELS):(i + 1) * len(MODELS)]
        assert [r[1].removesuffix(" (control)") for r in own] == _ranked(study.metric_tables[direction])
        assert [int(r[0]) for r in own] == list(range(1, len(MODELS) + 1))
        tests = significance[(significance["direction"] == direction) & (significance["metric"] == RANKING_METRIC)]
        for row in own:
            model = row[1].removesuffix(" (control)")
            if model == "scratch":
                assert row[3] == "control"
                continue
            test = tests[tests["model"] == model].iloc[0]
            assert row[3].startswith(format_value(test["mean_difference"], RANKING_METRIC) + " [")
            assert row[4] == f"{test['p_value']:.3g}" and row[5] == f"{test['p_holm']:.3g}" and row[6] == "18"
            assert re.fullmatch(r"\d\.\d+ \(3\)", row[7])  # seed SD (replicates)
    # The answer comes first, then the sentence about what n allows, its counts from the table itself.
    assert page.index('id="summary"') < page.index('id="data"')
    for direction in ("mr2ct", "ct2mr"):
        tests = significance[(significance["direction"] == direction) & (significance["metric"] == RANKING_METRIC)]
        better = int((tests["significant"] & (tests["mean_difference"] > 0)).sum())
        worse = int((tests["significant"] & (tests["mean_difference"] < 0)).sum())
        assert 0 < better and 0 < worse and better + worse < len(tests)  # the fixture has all three kinds
        assert (f"At n = 18 test patients, {better} of {len(tests)} models are better than scratch on SSIM in mask "
                f"after Holm correction (α = 0.05) and {worse} worse; the other {len(tests) - better - worse} cannot "
                "be told apart from scratch") in page


def test_the_report_shows_the_qa_figures_of_the_flagged_then_the_patients_nearest_a_bound(study, page: str) -> None:
    parser = Page()
    parser.feed(page)
    shown = [text.split(":")[0] for _, text in parser.qa]
    assert len(shown) == DEFAULT_QA_PATIENTS < len(PATIENTS) and parser.images_in_qa == DEFAULT_QA_PATIENTS
    assert shown == review_order(read_registration_qa(study.registration_qa), QA_BOUNDS)[:DEFAULT_QA_PATIENTS]
    assert shown[:len(FLAGGED)] == sorted(FLAGGED)  # flagged on top, and open; the others folded
    assert [text.split(":")[0] for is_open, text in parser.qa if is_open] == sorted(FLAGGED)
    assert f"QA figures of {DEFAULT_QA_PATIENTS} of the {len(PATIENTS)} patients" in page
    # Every patient is still in the QA table.
    section = page[page.index('<section id="preprocessing">'):]
    assert all(f"<td>{p}</td>" in section[:section.index("<details")] for p in PATIENTS)


def test_the_qa_section_weighs_the_same_for_18_or_180_patients(study: ReportInputs, tmp_path: Path) -> None:
    """The archive's 180 brain patients: the section must not grow with them (it did: 0.32 MB each)."""
    def section(n: int) -> str:
        images = []
        for i in range(n):
            folder = tmp_path / str(n) / f"p{i:03d}"
            folder.mkdir(parents=True)
            images.append(Path(shutil.copy(study.qa_images[0], folder / "qa.png")))
        flagged = {"p007": "head-mask Dice 0.41 < 0.9"}
        return qa_figures_html(images, flagged, "QA", order=None, limit=DEFAULT_QA_PATIENTS)
    small, large = section(18), section(180)
    assert small.count("<img") == large.count("<img") == DEFAULT_QA_PATIENTS
    assert abs(len(large) - len(small)) < 200  # only the counts in the lead differ
    assert "p007: <b>flagged</b>" in large.split("<details")[1]  # the flagged patient first
    assert qa_figures_html(images := [study.qa_images[0]], {}, "QA", limit=None).count("<img") == len(images)


def test_the_full_significance_table_is_folded_and_downloadable(study: ReportInputs, page: str) -> None:
    section = page[page.index('<section id="significance">'):]
    section = section[:section.index("</section>")]
    n_rows = len(pd.read_csv(study.significance))
    assert f"Per-patient tests: all {n_rows} rows" in section
    assert section.index("<details>") < section.index("<table>")  # folded: no table before the <details>
    assert 'download="significance.csv" href="data:text/csv;base64,' in section



CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FIRST_SCREEN = {"width": 1280, "height": 900}


def first_screen(page_path: Path, screenshot: Path | None = None) -> tuple[float, dict]:
    """Open a report in headless Chromium (Debian's, never Playwright's download): seconds until
    loaded, where the summary's first table sits, and a screenshot of the first screen if asked."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=FIRST_SCREEN)
        start = time.perf_counter()
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        seconds = time.perf_counter() - start
        box = page.locator("table.summary").first.bounding_box()
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        browser.close()
    return seconds, box


def test_report_opens_in_chromium_in_seconds_with_the_answer_on_the_first_screen(page: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is missing: no {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the Playwright package is missing (pip install playwright)")
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    shots = os.environ.get("MRCT_REPORT_SCREENSHOTS")
    seconds, box = first_screen(path, Path(shots) / "report_study_shape.png" if shots else None)
    assert seconds < 10, f"{check_size(page):.1f} MB report took {seconds:.1f} s to load"
    assert box is not None and box["y"] < FIRST_SCREEN["height"]  # the ranked table starts on the first screen


def test_per_model_latent_plots_are_those_of_the_best_models_the_grid_has_all(study: ReportInputs, page: str) -> None:
    section = page[page.index('<section id="latent">'):]
    section = section[:section.index("</section>")]
    best = set()
    for path in study.metric_tables.values():  # the 4 best (evaluate.n_figure_models' default) per direction
        best |= set(pd.read_csv(path).nlargest(4, f"{RANKING_METRIC}_avg")["model"])
    shown = set(re.findall(r'<img alt="(\w+)_(?:tsne|umap)"', section))
    assert shown == best and 4 <= len(best) < len(MODELS)
    assert section.count("<img") == 2 * len(best) + 1 + len(study.latent_joint)  # plots, the grid, joint
    assert f"Per-model plots of {len(best)} of the {len(MODELS)} models" in section


def test_a_figure_without_colour_is_encoded_gray_pixel_for_pixel(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (300, 400))
    rgb = _png(tmp_path / "gray_rgb.png", np.stack([noise] * 3 + [np.full_like(noise, 255)], axis=-1))
    with Image.open(io.BytesIO(display_png(rgb))) as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), noise)
    assert len(display_png(rgb)) < 0.5 * rgb.stat().st_size
    coloured = noise[..., None].repeat(3, axis=-1)
    coloured[0, 0] = (255, 0, 0)  # one red pixel keeps the colour
    with Image.open(io.BytesIO(display_png(_png(tmp_path / "red.png", coloured)))) as image:
        assert image.mode == "RGB"
