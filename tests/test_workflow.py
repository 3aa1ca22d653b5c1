"""The whole workflow, end to end, as the README's demo command runs it, on a tiny config.

One real ``snakemake --cores 2`` run through ``rule all`` (demo data, preprocessing, slices,
split, local photo pretraining, training of scratch and a pretrained model, predictions,
metrics, tables, latent space, figures, report). The report is then read as a browser would:
every section present, every image inline, nothing fetched from the network.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from test_rerun import tw  # the tiny-config helpers, loaded once from tests/slurm/

from mrct.report import SECTIONS

MODELS = ["scratch", "skimage_photos"]
CONFIG = tw.tiny_config(models=MODELS, slices={"size": 48})
pytestmark = pytest.mark.slow  # one full pipeline run, about a minute on 2 cores


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


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tw.write_workdir(tmp_path_factory.mktemp("demo"), CONFIG)
    tw.snakemake(workdir, "--cores", "2", timeout=900)
    return workdir


def test_report_has_every_section_with_inline_images_only(finished_run: Path) -> None:
    page = (finished_run / "results" / "report.html").read_text(encoding="utf-8")
    reader = PageReader()
    reader.feed(page)
    assert reader.sections == list(SECTIONS)
    # Preprocessing QA (2 per patient), translation grids, distributions, losses, latent plots.
    assert len(reader.images) >= 10
    assert all(src.startswith("data:image/png;base64,") for src in reader.images)
    assert all(url.startswith(("data:", "#")) for url in reader.urls), reader.urls
    assert not reader.tags & {"script", "link", "iframe", "object", "embed"}
    assert "SYNTHETIC" in page
    for model in MODELS:
        assert model in page


def test_tables_hold_every_model_in_both_directions(finished_run: Path) -> None:
    for direction in ("mr2ct", "ct2mr"):
        table = pd.read_csv(finished_run / "results" / "tables" / f"metrics_{direction}.csv")
        assert list(table["model"]) == MODELS
        # Averages exist for every metric; an STD over a single test patient is NaN, not 0.
        assert table.filter(regex="_avg$").notna().all().all()
    separability = pd.read_csv(finished_run / "results" / "latent" / "separability.csv")
    assert set(separability["model"]) == set(MODELS)
    # every model at all three stages, both generators: the controls beside the result
    stages = separability.groupby("model")["stage"].apply(lambda s: sorted(s.value_counts().items()))
    assert all(v == [("finetuned", 2), ("pretrained", 2), ("random", 2)] for v in stages), stages
    fid = pd.read_csv(finished_run / "results" / "tables" / "fid.csv")
    assert fid["fid_random_embedding"].notna().all() and "fid_scratch_encoder" not in fid


def test_the_pretrained_stage_is_the_start_of_fine_tuning(finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """skimage_photos' pretrained-stage features are those of its start file; scratch's differ from
    its random control (its own seeded start, not the control's weights)."""
    import numpy as np

    from mrct.evaluation.latent import extract_features, test_images
    from mrct.models.pretrained import load_pretrained_generator
    from mrct.slices.manifest import read_manifest

    monkeypatch.chdir(finished_run)  # the manifest's paths are relative to the working directory
    rows, mr, ct = test_images(read_manifest(finished_run / "results" / "slices" / "manifest.csv"),
                               CONFIG["latent"].get("max_slices"))
    start = load_pretrained_generator(finished_run / "resources" / "pretrained" / "skimage_photos.pth",
                                      {"ngf": CONFIG["network"]["ngf"], "n_blocks": CONFIG["network"]["n_blocks"]})
    expected = extract_features({"mr2ct": start.eval()}, mr, ct)["mr2ct"]
    with np.load(finished_run / "results" / "latent" / "skimage_photos_features.npz") as data:
        np.testing.assert_allclose(data["pretrained_features_mr2ct"], expected, rtol=1e-4, atol=1e-5)
        assert not np.allclose(data["features_mr2ct"], expected)
    with np.load(finished_run / "results" / "latent" / "scratch_features.npz") as data:
        assert not np.allclose(data["pretrained_features_mr2ct"], data["random_features_mr2ct"])


def test_every_test_slice_is_predicted_in_both_directions(finished_run: Path) -> None:
    manifest = pd.read_csv(finished_run / "results" / "slices" / "manifest.csv")
    test = manifest[manifest["split"] == "test"]
    assert len(test) > 0 and set(test["patient"]).isdisjoint(manifest.loc[manifest["split"] == "train", "patient"])
    for model in MODELS:
        for direction, column in (("mr2ct", "ct_png"), ("ct2mr", "mr_png")):
            folder = finished_run / "results" / "predictions" / model / direction
            assert sorted(p.name for p in folder.glob("*.png")) == sorted(Path(p).name for p in test[column])


def test_every_test_patient_has_a_synthetic_ct_and_volume_metrics(finished_run: Path) -> None:
    import numpy as np
    import SimpleITK as sitk

    manifest = pd.read_csv(finished_run / "results" / "slices" / "manifest.csv")
    test_patients = sorted(set(manifest.loc[manifest["split"] == "test", "patient"]))
    for model in MODELS:
        volumes = pd.read_csv(finished_run / "results" / "metrics" / f"{model}_volumes.csv")
        assert sorted(volumes["patient"]) == test_patients
        assert np.isfinite(volumes[["mae_hu", "psnr_hu", "ssim_hu", "ms_ssim_hu", "dice_soft", "dice_bone"]].to_numpy()).all()
        assert ((volumes["ms_ssim_hu"] > 0) & (volumes["ms_ssim_hu"] <= 1)).all()
        for patient in test_patients:
            sct = sitk.ReadImage(str(finished_run / "results" / "translations" / model / patient / "sct.nii.gz"))
            ct = sitk.ReadImage(str(finished_run / "results" / "preprocessed" / patient / "ct.nii.gz"))
            assert sct.GetSize() == ct.GetSize()
            np.testing.assert_allclose(sct.GetOrigin(), ct.GetOrigin(), atol=1e-4)
            np.testing.assert_allclose(sct.GetSpacing(), ct.GetSpacing(), atol=1e-5)
    table = pd.read_csv(finished_run / "results" / "tables" / "metrics_volumes.csv")
    assert list(table["model"]) == MODELS and (table["n_patients"] == len(test_patients)).all()


def test_the_same_config_gives_the_same_tables(finished_run: Path, tmp_path: Path) -> None:
    # Seeds in the config and fixed thread counts where sums depend on them: a second run in a
    # new directory redoes demo data, N4, registration, slices, training and evaluation, and
    # must write the same bytes.
    workdir = tw.write_workdir(tmp_path, CONFIG)
    tables = [f"results/tables/metrics_{direction}.csv" for direction in ("mr2ct", "ct2mr")]
    tables.append("results/tables/metrics_volumes.csv")
    tw.snakemake(workdir, "--cores", "2", *tables, timeout=900)
    for table in tables:
        assert (workdir / table).read_bytes() == (finished_run / table).read_bytes(), table
