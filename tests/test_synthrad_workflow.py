"""A SynthRAD2025-shaped archive (.mha, as published) read by the workflow end to end to the
manifest, and an archive whose md5 differs from the pin stopped before anything is unpacked.

The archive is placed where the download would put it (data/raw/synthrad2025/Task1.zip), as a
user with a local copy does; its MR is on the CT grid and aligned, as SynthRAD's is, so rule
register keeps it voxel for voxel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tiny_workflow", ROOT / "tests" / "slurm" / "tiny_workflow.py")
tw = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tw
_spec.loader.exec_module(tw)

pytestmark = pytest.mark.slow  # two short Snakemake runs

PATIENTS = ["1HNA001", "1HNA002", "1HNB001", "1HNB002", "1HNC001", "1HNC002"]
TARGETS = ("results/slices/manifest.csv", "results/preprocessed/patients.csv")


def _head(seed: int) -> dict[str, sitk.Image]:
    """A small head-like pair on one 3 mm grid: soft tissue with a shared smooth texture
    (so MR and CT carry the same structure), a skull shell, air around; and the body mask."""
    rng = np.random.default_rng(seed)
    shape = (20, 28, 24)  # z, y, x
    z, y, x = np.indices(shape, dtype=float)
    radii = np.array([8.0, 11.0, 9.0]) * rng.uniform(0.9, 1.05)
    r = np.sqrt(((z - 10) / radii[0]) ** 2 + ((y - 14) / radii[1]) ** 2 + ((x - 12) / radii[2]) ** 2)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    texture /= np.abs(texture).max()
    brain, skull = r < 0.85, (r >= 0.85) & (r < 1.0)
    ct = np.where(brain, 35 + 25 * texture, np.where(skull, 1200.0, -1000.0)) + rng.normal(0, 5, shape)
    mr = np.where(brain, 800 - 300 * texture, np.where(skull, 60.0, 0.0)) + np.abs(rng.normal(0, 10, shape))
    images = {}
    for name, array in (("ct", ct), ("mr", mr), ("mask", (r < 1.0).astype(np.uint8))):
        image = sitk.GetImageFromArray(array.astype(np.float32) if name != "mask" else array)
        image.SetSpacing((3.0, 3.0, 3.0))
        image.SetOrigin((-36.0, -42.0, -30.0))
        images[name] = image
    return images


def _mha_bytes(image: sitk.Image, folder: Path) -> bytes:
    path = folder / "tmp.mha"
    sitk.WriteImage(image, str(path), useCompression=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Task1/{AB,HN,TH}/<id>/{mr,ct,mask}.mha with an overview folder; 6 HN patients of 3 centres."""
    folder = tmp_path_factory.mktemp("archive")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for seed, patient in enumerate(PATIENTS):
            for name, image in _head(seed).items():
                zf.writestr(f"Task1/HN/{patient}/{name}.mha", _mha_bytes(image, folder))
        for name, image in _head(99).items():
            zf.writestr(f"Task1/TH/1THA001/{name}.mha", _mha_bytes(image, folder))
        zf.writestr("Task1/HN/overview/1_HN_train.xlsx", b"not read")
    path = folder / "Task1.zip"
    path.write_bytes(buffer.getvalue())
    return path


def _workdir(tmp_path: Path, archive: Path, md5: str) -> Path:
    config = tw.tiny_config(
        dataset={"source": "synthrad2025", "max_patients": 3,
                 "synthrad2025": {"url": None, "md5": md5, "region": "HN"}},
        # 3 mm voxels and 20 slices: the tiny heads fill most of each slice
        slices={"size": 32, "per_patient": 2, "min_head_fraction": 0.05},
    )
    workdir = tw.write_workdir(tmp_path, config)
    placed = workdir / "data" / "raw" / "synthrad2025" / "Task1.zip"
    placed.parent.mkdir(parents=True)
    placed.symlink_to(archive)  # a local copy, used in place
    return workdir


def test_synthrad2025_archive_is_read_to_the_manifest(tmp_path: Path, archive: Path) -> None:
    workdir = _workdir(tmp_path, archive, hashlib.md5(archive.read_bytes()).hexdigest())
    tw.snakemake(workdir, "--cores", "2", *TARGETS)
    patients = pd.read_csv(workdir / TARGETS[1], dtype=str, keep_default_na=False)
    assert patients["source"].unique().tolist() == ["synthrad2025"]
    assert sorted(patients["centre"]) == ["A", "B", "C"], "3 of 6 patients: one per centre"
    manifest = pd.read_csv(workdir / TARGETS[0])
    assert sorted(manifest["patient"].unique()) == sorted(patients["patient"])
    assert set(manifest["split"]) == {"train", "test"}
    for patient in patients["patient"]:
        raw = sitk.ReadImage(str(workdir / "data" / "raw" / "synthrad2025" / patient / "mr.mha"))
        corrected = sitk.ReadImage(str(workdir / "results" / "preprocessed" / patient / "mr_biascorrected.nii.gz"))
        registered = sitk.ReadImage(str(workdir / "results" / "preprocessed" / patient / "mr.nii.gz"))
        assert raw.GetSize() == registered.GetSize()
        # Aligned on the CT grid: the bias-corrected voxels are kept, not resampled.
        np.testing.assert_array_equal(sitk.GetArrayFromImage(registered), sitk.GetArrayFromImage(corrected))
    assert (workdir / "data" / "raw" / "synthrad2025.lock").is_file(), "the sha256 is recorded for repeat runs"


def test_md5_mismatch_stops_before_unpacking(tmp_path: Path, archive: Path) -> None:
    pinned = "0123456789abcdef0123456789abcdef"
    workdir = _workdir(tmp_path, archive, pinned)
    result = tw.snakemake(workdir, "--cores", "1", *TARGETS, check=False)
    assert result.returncode != 0
    log = (workdir / "logs" / "verify_dataset" / "synthrad2025.log").read_text()
    assert pinned in log and hashlib.md5(archive.read_bytes()).hexdigest() in log
    unpacked = [p for p in (workdir / "data" / "raw" / "synthrad2025").iterdir() if p.is_dir()]
    assert unpacked == [], "no patient is unpacked from an archive that fails its md5"
    assert not (workdir / "data" / "raw" / "synthrad2025.lock").exists()
