"""The whole workflow, end to end, as the README's demo command runs it, on a tiny config.

These tests read the suite's one shared run (``e2e_run`` in tests/conftest.py: demo data,
preprocessing, slices, split, local photo pretraining, training of scratch and a pretrained
model, predictions, metrics, tables, significance, latent space, FID, reader study, report).
They check values, not only that files exist: the tables against the per-slice metrics they
summarise (computed again here with pandas), significance n against the tested patients, a
constant-image predictor against the trained models, and the report as a browser reads it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py

from mrct.evaluation.evaluate import evaluate_model
from mrct.io.png import read_gray_png, write_gray_png
from mrct.report import SECTIONS
from mrct.slices.manifest import read_manifest

MODELS = tw.E2E["models"]
DIRECTIONS = {"mr2ct": "ct_png", "ct2mr": "mr_png"}
pytestmark = pytest.mark.slow  # reads the shared pipeline run (a minute or two on 2 cores)


class PageReader(HTMLParser):
    """Sections, image sources and every URL-valued attribute of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str | None] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(values.get("id"))
        if tag == "img":
            self.images.append(values.get("src") or "")
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]


def _manifest(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "slices" / "manifest.csv")


def _test_patients(run: Path) -> list[str]:
    manifest = _manifest(run)
    return sorted(set(manifest.loc[manifest["split"] == "test", "patient"].astype(str)))


def _slice_metrics(run: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(run / "results" / "metrics" / f"{m}.csv") for m in MODELS], ignore_index=True)


def test_the_run_tests_several_patients(e2e_run: Path) -> None:
    # Everything below needs n > 1 (an STD, a paired test over patients, a patient-grouped k-NN).
    assert len(_test_patients(e2e_run)) >= 2


def test_report_has_every_section_with_inline_images_only(e2e_run: Path) -> None:
    page = (e2e_run / "results" / "report.html").read_text(encoding="utf-8")
    reader = PageReader()
    reader.feed(page)
    assert reader.sections == list(SECTIONS)
    # Preprocessing QA (2 per patient), translation grids, distributions, losses, latent plots.
    assert len(reader.images) >= 10
    assert all(src.startswith("data:image/png;base64,") for src in reader.images)
    assert all(url.startswith(("data:", "#")) for url in reader.urls), reader.urls
    assert not reader.tags & {"script", "link", "iframe", "object", "embed"}
    assert "SYNTHETIC" in page
    assert f"The {tw.E2E['dataset']['demo']['n_patients']} patients of this run (source demo)" in page
    for model in MODELS:
        assert model in page


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_tables_are_the_mean_and_std_of_the_per_slice_metrics(e2e_run: Path, direction: str) -> None:
    table = pd.read_csv(e2e_run / "results" / "tables" / f"metrics_{direction}.csv").set_index("model")
    assert list(table.index) == MODELS
    slices = _slice_metrics(e2e_run)
    own = slices[slices["direction"] == direction]
    metrics = [c.removesuffix("_avg") for c in table.columns if c.endswith("_avg")]
    assert {"ssim", "ssim_masked", "psnr_masked"} <= set(metrics)
    checked = 0
    for model, rows in own.groupby("model"):
        assert table.loc[model, "n_slices"] == len(rows)
        assert table.loc[model, "n_patients"] == rows["patient"].nunique() == len(_test_patients(e2e_run))
        for metric in metrics:
            values = rows[metric].dropna()
            np.testing.assert_allclose(table.loc[model, f"{metric}_avg"], values.mean(), rtol=1e-9, err_msg=metric)
            if len(values) > 1:
                np.testing.assert_allclose(table.loc[model, f"{metric}_std"], values.std(ddof=1), rtol=1e-9,
                                           err_msg=metric)
                checked += 1
    assert checked >= len(MODELS) * 10  # an STD over several slices for (almost) every metric


def _patients_with_values(run: Path, model: str, direction: str, metric: str) -> set[str]:
    """Tested patients with a value of ``metric`` for ``model``, from the per-slice or volume table."""
    slices = _slice_metrics(run)
    own = slices[(slices["model"] == model) & (slices["direction"] == direction)]
    if metric in own.columns:
        return set(own.loc[own[metric].notna(), "patient"].astype(str))
    volumes = pd.read_csv(run / "results" / "metrics" / f"{model}_volumes.csv")
    return set(volumes.loc[volumes[metric].notna(), "patient"].astype(str))


def test_significance_counts_every_tested_patient(e2e_run: Path) -> None:
    table = pd.read_csv(e2e_run / "results" / "tables" / "significance.csv")
    patients = table[table["unit"] == "patient"]
    control = tw.e2e_config()["evaluate"]["control"] or "scratch"
    assert not patients.empty and set(patients["model"]) == set(MODELS) - {control}
    assert (patients["control"] == control).all()
    # n is every tested patient, wherever the metric is defined for both models (e.g. no air
    # inside a head's body mask leaves the air HD95 undefined for every patient).
    tested = len(_test_patients(e2e_run))
    for row in patients.itertuples():
        both = (_patients_with_values(e2e_run, row.model, row.direction, row.metric)
                & _patients_with_values(e2e_run, control, row.direction, row.metric))
        assert row.n == len(both), (row.direction, row.metric, row.n, sorted(both))
    assert (patients["n"] == tested).mean() > 0.9, patients[["metric", "n"]]
    several = patients[patients["n"] >= 2]  # a bootstrap interval needs two patients
    assert several["p_value"].between(0, 1).all()
    assert (several["ci_low"] <= several["ci_high"]).all()


def test_the_mixed_up_patient_is_left_out_and_named_in_the_report(e2e_run: Path) -> None:
    mixed_up = tw.E2E["dataset"]["demo"]["mixed_up"]
    qa = pd.read_csv(e2e_run / "results" / "preprocessed" / "registration_qa.csv", dtype={"patient": str})
    qa = qa.set_index("patient")
    assert qa.loc[mixed_up, "flagged"].all() and (qa.loc[mixed_up, "decision"] == "left out").all()
    assert not qa.drop(index=mixed_up)["flagged"].any(), qa.to_string()  # correct pairs pass
    assert set(_manifest(e2e_run)["patient"].astype(str)).isdisjoint(mixed_up)
    page = (e2e_run / "results" / "report.html").read_text(encoding="utf-8")
    for patient in mixed_up:
        assert f"<b>{patient}</b>, left out" in page


def test_latent_separability_is_computed(e2e_run: Path) -> None:
    separability = pd.read_csv(e2e_run / "results" / "latent" / "separability.csv")
    assert set(separability["model"]) == set(MODELS)
    assert separability["knn_accuracy"].between(0, 1).all() and separability["silhouette"].notna().all()
    # every model at all three stages, both generators: the controls beside the result
    stages = separability.groupby("model")["stage"].apply(lambda s: sorted(s.value_counts().items()))
    assert all(v == [("finetuned", 2), ("pretrained", 2), ("random", 2)] for v in stages), stages
    fid = pd.read_csv(e2e_run / "results" / "tables" / "fid.csv")
    assert fid["fid_random_embedding"].notna().all() and "fid_scratch_encoder" not in fid


def test_the_pretrained_stage_is_the_start_of_fine_tuning(e2e_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skimage_photos' pretrained-stage features are those of its start file; scratch's differ from
    its random control (its own seeded start, not the control's weights)."""
    import numpy as np

    from mrct.evaluation.latent import extract_features, test_images
    from mrct.models.pretrained import load_pretrained_generator
    from mrct.slices.manifest import read_manifest

    monkeypatch.chdir(e2e_run)  # the manifest's paths are relative to the working directory
    rows, mr, ct = test_images(read_manifest(e2e_run / "results" / "slices" / "manifest.csv"),
                               tw.e2e_config()["latent"].get("max_slices"))
    start = load_pretrained_generator(e2e_run / "resources" / "pretrained" / "skimage_photos.pth",
                                      {"ngf": tw.e2e_config()["network"]["ngf"], "n_blocks": tw.e2e_config()["network"]["n_blocks"]})
    expected = extract_features({"mr2ct": start.eval()}, mr, ct)["mr2ct"]
    with np.load(e2e_run / "results" / "latent" / "skimage_photos_features.npz") as data:
        np.testing.assert_allclose(data["pretrained_features_mr2ct"], expected, rtol=1e-4, atol=1e-5)
        assert not np.allclose(data["features_mr2ct"], expected)
    with np.load(e2e_run / "results" / "latent" / "scratch_features.npz") as data:
        assert not np.allclose(data["pretrained_features_mr2ct"], data["random_features_mr2ct"])


def test_a_constant_image_scores_worse_than_every_trained_model(e2e_run: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # What the assertions above cannot see: a wired-up pipeline whose generator outputs nothing.
    # Each test slice's prediction is replaced by its ground truth's median gray level.
    manifest = read_manifest(e2e_run / "results" / "slices" / "manifest.csv")
    test = manifest[manifest["split"] == "test"]
    for direction, column in DIRECTIONS.items():
        folder = tmp_path / "constant" / direction
        folder.mkdir(parents=True)
        for path in test[column]:
            truth = read_gray_png(e2e_run / path)
            write_gray_png(np.full_like(truth, np.median(truth)), folder / Path(path).name)
    hu_clip = tw.e2e_config()["evaluate"]["hu_clip"]
    monkeypatch.chdir(e2e_run)  # the manifest's paths are relative to the workdir, as in rule evaluate
    constant = evaluate_model("constant", manifest, tmp_path / "constant", hu_clip)
    trained = _slice_metrics(e2e_run)
    # PSNR inside the head: the tiny models (one epoch, 4 filters) are about 6 dB above a constant
    # image there, while on the whole slice a constant gray background can still beat them.
    for direction in DIRECTIONS:
        floor = constant.loc[constant["direction"] == direction, "psnr_masked"].mean()
        for model in MODELS:
            own = trained[(trained["model"] == model) & (trained["direction"] == direction)]
            assert own["psnr_masked"].mean() > floor + 3.0, (model, direction, own["psnr_masked"].mean(), floor)


def test_every_test_slice_is_predicted_in_both_directions(e2e_run: Path) -> None:
    manifest = _manifest(e2e_run)
    test = manifest[manifest["split"] == "test"]
    assert set(test["patient"]).isdisjoint(manifest.loc[manifest["split"] == "train", "patient"])
    for model in MODELS:
        for direction, column in DIRECTIONS.items():
            folder = e2e_run / "results" / "predictions" / model / direction
            assert sorted(p.name for p in folder.glob("*.png")) == sorted(Path(p).name for p in test[column])


def test_every_test_patient_has_a_synthetic_ct_and_volume_metrics(e2e_run: Path) -> None:
    import SimpleITK as sitk

    test_patients = _test_patients(e2e_run)
    for model in MODELS:
        volumes = pd.read_csv(e2e_run / "results" / "metrics" / f"{model}_volumes.csv")
        assert sorted(volumes["patient"].astype(str)) == test_patients
        assert np.isfinite(volumes[["mae_hu", "psnr_hu", "ssim_hu", "ms_ssim_hu", "dice_soft", "dice_bone"]].to_numpy()).all()
        assert ((volumes["ms_ssim_hu"] > 0) & (volumes["ms_ssim_hu"] <= 1)).all()
        for patient in test_patients:
            sct = sitk.ReadImage(str(e2e_run / "results" / "translations" / model / patient / "sct.nii.gz"))
            ct = sitk.ReadImage(str(e2e_run / "results" / "preprocessed" / patient / "ct.nii.gz"))
            assert sct.GetSize() == ct.GetSize()
            np.testing.assert_allclose(sct.GetOrigin(), ct.GetOrigin(), atol=1e-4)
            np.testing.assert_allclose(sct.GetSpacing(), ct.GetSpacing(), atol=1e-5)
    table = pd.read_csv(e2e_run / "results" / "tables" / "metrics_volumes.csv").set_index("model")
    assert list(table.index) == MODELS and (table["n_patients"] == len(test_patients)).all()
    for model in MODELS:
        volumes = pd.read_csv(e2e_run / "results" / "metrics" / f"{model}_volumes.csv")
        np.testing.assert_allclose(table.loc[model, "mae_hu_mean"], volumes["mae_hu"].mean(), rtol=1e-9)


def test_rerunning_from_the_slices_gives_the_same_metrics(e2e_copy: Path) -> None:
    # Seeds in the config and fixed thread counts where sums depend on them: slicing, the split,
    # training, prediction and evaluation of scratch run again in a copy and must write the same
    # bytes: its per-slice and per-volume metrics, what every table and test is computed from.
    # (Preprocessing is left out: its determinism is tested per step, and it is most of the run.)
    targets = ["results/metrics/scratch.csv", "results/metrics/scratch_volumes.csv"]
    before = {target: (e2e_copy / target).read_bytes() for target in targets}
    model = e2e_copy / "results/models/scratch/G_mr2ct.pth"
    trained_at = model.stat().st_mtime
    # the targets before --forcerun, which takes every name after it as a rule to force
    result = tw.snakemake(e2e_copy, "--cores", "2", *targets, "--forcerun", "extract_slices", timeout=1200)
    reran = set(re.findall(r"^(?:local)?rule (\w+):", result.stdout + result.stderr, re.MULTILINE))
    assert {"extract_slices", "train", "evaluate"} <= reran and "all" not in reran, reran
    assert model.stat().st_mtime > trained_at  # it did train again
    for target in targets:
        assert (e2e_copy / target).read_bytes() == before[target], target
