"""Figures and the self-contained HTML report, built from small fixtures made here."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_reader_analysis import make_key, simulate, write_answers
from test_tables import fake_metrics

from mrct.evaluation.figures import figure_slices, loss_curves, metric_distributions, save_figure, translation_grid
from mrct.evaluation.runs import replicate_table
from mrct.evaluation.significance import significance_table
from mrct.evaluation.tables import summarize
from mrct.reader_study.analysis import read_key, write_analysis
from mrct.report import SECTIONS, ReportInputs, build_report, write_report

MODELS = ["scratch", "skimage_photos"]


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.links, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


@pytest.fixture
def project(tmp_path):
    """A manifest with 2 test patients x 2 slices, predictions of two models, and the other inputs."""
    rng = np.random.default_rng(0)
    rows = []
    for patient in ("p1", "p2", "p3"):
        for z in (2, 4):
            name = f"{patient}_z{z:03d}.png"
            ct = rng.integers(0, 256, (48, 48))
            paths = {k: _png(tmp_path / "slices" / patient / k / name, v)
                     for k, v in {"mr": 255 - ct, "ct": ct, "mask": np.full((48, 48), 255)}.items()}
            for model in MODELS:
                for direction in ("mr2ct", "ct2mr"):
                    _png(tmp_path / "pred" / model / direction / name, rng.integers(0, 256, (48, 48)))
            rows.append({"patient": patient, "slice": z, "split": "train" if patient == "p3" else "test",
                         "mr_png": str(paths["mr"]), "ct_png": str(paths["ct"]), "mask_png": str(paths["mask"]),
                         "ct_lo_hu": -1024.0, "ct_hi_hu": 2000.0, "synthetic": True})
    manifest = pd.DataFrame(rows)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    slices = fake_metrics(MODELS, n_slices=6)
    tables = {}
    for direction in ("mr2ct", "ct2mr"):
        tables[direction] = tmp_path / f"metrics_{direction}.csv"
        summarize(slices, MODELS, direction).to_csv(tables[direction], index=False)
    significance_table(slices, MODELS, n_bootstrap=200).to_csv(tmp_path / "significance.csv", index=False)
    roots = {m: tmp_path / "pred" / m for m in MODELS}
    figures = [tmp_path / "fig" / "translation_mr2ct.png", tmp_path / "fig" / "distributions.png", tmp_path / "fig" / "losses.png"]
    save_figure(translation_grid(manifest, roots, "mr2ct", 3), figures[0])
    save_figure(metric_distributions(slices, MODELS), figures[1])
    logs = {m: pd.DataFrame({"epoch": [1, 2, 3], "lr": [1e-4] * 3, "seconds": [1.0] * 3, "loss_G": [3.0, 2.0, 1.5], "loss_D": [0.5, 0.4, 0.3]}) for m in MODELS}
    save_figure(loss_curves(logs), figures[2])
    qa = [_png(tmp_path / "pre" / p / "qa.png", rng.integers(0, 256, (20, 30))) for p in ("p1", "p2")]
    grid = _png(tmp_path / "latent" / "grid.png", rng.integers(0, 256, (20, 20)))
    pd.DataFrame([{"model": "scratch", "stage": stage, "generator": "mr2ct", "silhouette": sil, "knn_accuracy": 0.9}
                  for stage, sil in (("random", 0.25), ("pretrained", 0.5), ("finetuned", 0.375))]
                 ).to_csv(tmp_path / "sep.csv", index=False)
    (tmp_path / "bench" / "train").mkdir(parents=True)
    (tmp_path / "bench" / "train" / "scratch.tsv").write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t300.1\n")
    pd.DataFrame([{"model": "scratch", "direction": "mr2ct", "n_real": 4, "n_fake": 4, "fid_inception": None,
                   "fid_random_embedding": 1.25, "note": "FID: not computed (no Inception weights at w.pth)"}]
                 ).to_csv(tmp_path / "fid.csv", index=False)
    design = {"training_table": tmp_path / "training.csv", "replicates_table": tmp_path / "replicates.csv",
              "selection_table": tmp_path / "selection.csv", "folds": 1, "replicates": 1, "train_sizes": [],
              "control": "scratch"}
    pd.DataFrame([{"model": m, "fold": 0, "replicate": 0, "seed": 42} for m in MODELS]).to_csv(
        design["training_table"], index=False)
    replicate_table(slices, MODELS).to_csv(design["replicates_table"], index=False)
    pd.DataFrame([{"direction": "mr2ct", "model": "scratch", "metric": "ssim_masked", "value": 0.5,
                   "patients": "p1"}]).to_csv(design["selection_table"], index=False)
    return ReportInputs(manifest=tmp_path / "manifest.csv", metric_tables=tables, significance=tmp_path / "significance.csv",
                        qa_images=qa, figures=figures, latent_grid=grid, latent_plots=[grid], separability=tmp_path / "sep.csv",
                        benchmark_dir=tmp_path / "bench", config={"seed": 42, "models": MODELS},
                        fid=tmp_path / "fid.csv", reader_analysis=_reader_study(tmp_path / "reader", answered=True),
                        design=design)


def _reader_study(folder, answered: bool):
    """The reader-study analysis outputs, from two simulated readers or from none."""
    folder.mkdir()
    key_path = make_key(folder)
    key = read_key(key_path)
    answers = [write_answers(folder, f"{name}.csv", simulate(key, name, lambda r: r.truth, lambda r: 3))
               for name in ("reader_a", "reader_b")] if answered else []
    outputs = {name: folder / f"{name}.csv" for name in ("table_v", "table_vi", "classification", "agreement", "note")}
    write_analysis(key_path, answers, "data/reader_study", outputs)
    return outputs


def test_figure_slices_are_fixed_and_from_the_test_split(project):
    manifest = pd.read_csv(project.manifest)
    picked = figure_slices(manifest, 3)
    assert len(picked) == 3 and set(picked["patient"]) <= {"p1", "p2"}
    assert picked.equals(figure_slices(manifest, 3))
    assert len(figure_slices(manifest, 50)) == 4


def test_report_is_self_contained_with_every_section(project, tmp_path):
    target = tmp_path / "out" / "report.html"
    write_report(project, target)
    page = target.read_text(encoding="utf-8")
    parser = Collector()
    parser.feed(page)
    assert parser.sections == list(SECTIONS)
    # 2 QA + 3 figures + grid + 1 latent plot, all inline PNGs
    assert len(parser.images) == 7 and all(src.startswith("data:image/png;base64,") for src in parser.images)
    assert not [link for link in parser.links if link.lower().startswith(("http:", "https:", "//"))]
    assert all(link.startswith(("data:", "#")) for link in parser.links)
    assert "script" not in parser.tags and "link" not in parser.tags
    assert "SYNTHETIC" in page and "skimage_photos" in page and "<b>" in page
    assert "train/scratch" in page and "12.5" in page  # run times from the benchmark file
    assert "Holm" in page and "seed: 42" in page
    assert "FID: not computed (no Inception weights at w.pth)" in page and "1.25" in page
    assert "fid_random_embedding ranks the models" in page and "seed" in page
    # the latent section shows what fine-tuning changed: fine-tuned 0.375 - pretrained 0.5
    assert "What fine-tuning changed" in page and "change_finetuning" in page and "-0.125" in page
    assert "Table V" in page and "Table VI" in page and "reader_b" in page and "quadratic" in page
    # Table VI is the study's (r, C_b, CCC); classification figures are a table of their own
    assert "<th>ccc_cb</th>" in page and "<th>classification_accuracy</th>" in page
    assert page.index("<th>ccc_cb</th>") < page.index("not a table of the study") < page.index(
        "<th>classification_accuracy</th>")


def test_report_says_how_to_run_the_reader_study_without_answers(project, tmp_path):
    project.reader_analysis = _reader_study(tmp_path / "unanswered", answered=False)
    page = build_report(project)
    assert "No reader-study answers found in data/reader_study/" in page and "Table VI" not in page


def test_report_without_reader_study_or_fid_leaves_the_sections_out(project):
    project.reader_analysis, project.fid = None, None
    parser = Collector()
    parser.feed(build_report(project))
    assert "reader_analysis" not in parser.sections and "fid" not in parser.sections and "latent" in parser.sections


def test_report_says_what_ranks_the_models_and_the_unit_of_analysis(project):
    page = build_report(project)
    # Both forms of the 8-bit metrics, the masked block first, and the reason it ranks the models.
    assert page.index("inside the head mask (ranks the models)") < page.index("whole slice (comparable with the study")
    assert "The metrics inside the head mask rank the models" in page and "air" in page
    assert "Ranking by SSIM inside the head mask: skimage_photos" in page  # fake_metrics: the later model is better
    # Significance: the patient is the unit, n patients stated, per-slice tests folded away and labelled.
    assert "Unit of analysis: <b>the patient</b>" in page
    assert "unit of analysis = patient; every p-value rests on n = 2 test patients" in page
    assert "p_min_attainable" in page and "Per-slice tests (unit = slice" in page


def test_real_data_is_not_labelled_synthetic(project):
    manifest = pd.read_csv(project.manifest).assign(synthetic=False)
    manifest.to_csv(project.manifest, index=False)
    assert "SYNTHETIC" not in build_report(project)


def test_missing_image_names_the_file(project, tmp_path):
    project.figures.append(tmp_path / "absent.png")
    with pytest.raises(FileNotFoundError, match="absent.png"):
        build_report(project)


def test_loss_curves_need_loss_columns():
    with pytest.raises(ValueError, match="loss_"):
        loss_curves({"scratch": pd.DataFrame({"epoch": [1], "lr": [0.1]})})


def test_distributions_mark_a_metric_that_is_undefined_for_every_slice(tmp_path: Path) -> None:
    # VIF is NaN for slices under 41 px; seaborn cannot draw an empty box plot.
    slices = fake_metrics(MODELS, n_slices=4).assign(vif_masked=np.nan)
    figure = metric_distributions(slices, MODELS)
    titles = [ax.get_title() for ax in figure.axes]
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "VIF inside the head mask" in titles
    assert texts == ["VIF inside the head mask: not defined for these slices"]
    save_figure(figure, tmp_path / "d.png")


def test_volume_section_states_the_configured_hu_clip(tmp_path: Path) -> None:
    from mrct.evaluation.volumes import summarize_volumes
    from mrct.report import volumes_section

    from mrct.evaluation.hu_metrics import VOLUME_METRICS

    volumes = pd.DataFrame({"model": ["scratch"] * 2, "patient": ["p1", "p2"],
                            **{metric: [0.5, 0.6] for metric in VOLUME_METRICS}})
    path = tmp_path / "metrics_volumes.csv"
    summarize_volumes(volumes, ["scratch"]).to_csv(path, index=False)
    section = volumes_section(path, [-1000.0, 2000.0])
    assert "clipping to [-1000, 2000] HU" in section and "3000" not in section


def test_summary_answers_first_and_says_what_two_patients_allow(project):
    page = build_report(project)
    assert page.index("SYNTHETIC") < page.index('<section id="summary">') < page.index('<section id="data">')
    summary = page[page.index('<section id="summary">'):page.index('<section id="data">')]
    # fake_metrics: the later model is better; 2 test patients cannot reach p < 0.05.
    assert summary.index("skimage_photos") < summary.index("scratch <i>(control)</i>")
    assert "With n = 2 test patients the smallest p-value" in summary and "no model can be shown to differ from scratch" in summary
    assert "Each model was trained once" not in summary  # only said where tests can be significant


@pytest.mark.parametrize("column, name", [("control", "random_init"), ("baseline", "scratch"), (None, "scratch")])
def test_the_control_is_read_from_the_significance_table(project, column, name):
    table = pd.read_csv(project.significance).drop(columns="baseline")
    if column is not None:
        table[column] = name
    table.to_csv(project.significance, index=False)
    page = build_report(project)
    assert f"Δ = model − {name}" in page and f"per-patient differences to the control ({name})" in page


def test_summary_shows_the_seed_spread_from_an_optional_replicates_table(project, tmp_path):
    assert "seed SD" not in build_report(project)
    rows = [{"direction": d, "metric": "ssim_masked", "model": m, "n_replicates": 3, "mean": 0.5,
             "sd_between_replicates": 0.0123} for d in ("mr2ct", "ct2mr") for m in MODELS]
    project.replicates = tmp_path / "replicates.csv"
    pd.DataFrame(rows).to_csv(project.replicates, index=False)
    page = build_report(project)
    assert "seed SD (seeds)" in page and page.count("0.0123 (3)") == 2 * len(MODELS)


def test_forest_plots_are_in_the_summary_and_sorted_by_effect(project, tmp_path):
    from mrct.evaluation.forest import direction_forest_plot, direction_metrics, effect_order, forest_rows, read_significance

    significance = read_significance(project.significance)
    assert direction_metrics(significance, "mr2ct") == ["ssim_masked", "psnr_masked", "hu_mae"]  # no volume rows
    assert direction_metrics(significance, "ct2mr") == ["ssim_masked", "psnr_masked", "mae_masked"]
    three = pd.concat([significance, significance.assign(model="worse", mean_difference=-1.0)], ignore_index=True)
    assert effect_order(forest_rows(three, None, "mr2ct", ["ssim_masked"])) == ["skimage_photos", "worse"]
    project.forest_plots = {}
    for direction in ("mr2ct", "ct2mr"):
        project.forest_plots[direction] = tmp_path / f"forest_{direction}.png"
        save_figure(direction_forest_plot(significance, None, direction), project.forest_plots[direction])
    page = build_report(project)
    summary = page[page.index('<section id="summary">'):page.index('<section id="data">')]
    assert summary.count("<img") == 2 and "Forest plot, CT → MR" in summary


def test_translation_grids_show_the_control_and_the_best_models():
    from mrct.evaluation.figures import figure_models

    models = ["scratch", "skimage_photos", "horse2zebra", "zebra2horse"]
    slices = fake_metrics(models)  # the later model is better
    assert figure_models(slices, models, "mr2ct", "scratch", 2) == ["scratch", "zebra2horse", "horse2zebra"]
    assert figure_models(slices, models, "ct2mr", "absent", 9) == ["zebra2horse", "horse2zebra", "skimage_photos", "scratch"]
