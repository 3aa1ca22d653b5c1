"""Slice geometry, 8-bit mapping, slice choice, and the split by patient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from mrct.slices.extract import choose_slices, extract_patient_slices
from mrct.slices.geometry import from_square, from_uint8, to_square, to_uint8
from mrct.slices.manifest import MANIFEST_COLUMNS, read_manifest
from mrct.slices.split import assign_split, build_manifest, write_manifest


@pytest.mark.parametrize("shape", [(40, 30), (30, 40), (32, 32), (17, 50)])
def test_square_round_trip_keeps_aspect_and_content(shape):
    rows, cols = np.indices(shape)
    image = np.sin(rows / 6.0) + np.cos(cols / 7.0)  # smooth, so resampling loses little
    square = to_square(image, 64)
    assert square.shape == (64, 64)
    back = from_square(square, shape)
    assert back.shape == shape
    assert np.abs(back - image)[2:-2, 2:-2].max() < 0.1


def test_padding_is_background_and_centred():
    square = to_square(np.ones((10, 20)), 20, background=-5)
    assert np.all(square[:5] == -5) and np.all(square[-5:] == -5)
    assert np.allclose(square[5:15], 1)


def test_uint8_mapping_round_trip_within_quantisation():
    values = np.linspace(-1024, 2000, 1000)
    pixels = to_uint8(values, -1024, 2000)
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255
    assert np.abs(from_uint8(pixels, -1024, 2000) - values).max() <= 3024 / 255 / 2 + 1e-9
    with pytest.raises(ValueError, match="must be < high"):
        to_uint8(values, 5, 5)


def test_choose_slices_follows_head_fraction():
    mask = np.zeros((10, 8, 8), dtype=bool)
    mask[3:8, 2:6, 2:6] = True  # 25 % of each of slices 3..7
    assert choose_slices(mask, 0.2, None) == [3, 4, 5, 6, 7]
    assert choose_slices(mask, 0.2, 3) == [3, 5, 7]
    with pytest.raises(ValueError, match="no axial slice"):
        choose_slices(mask, 0.5, None)


def test_split_is_by_patient_seeded_and_never_empty():
    patients = [f"p{i:02d}" for i in range(10)]
    split = assign_split(patients, 0.7, seed=3)
    assert split == assign_split(list(reversed(patients)), 0.7, seed=3)
    assert list(split.values()).count("train") == 7
    assert split != assign_split(patients, 0.7, seed=4)
    assert set(assign_split(["a", "b"], 0.99, 0).values()) == {"train", "test"}
    with pytest.raises(ValueError, match="at least 2 patients"):
        assign_split(["only"], 0.7, 0)


def _volume(array):
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((1.0, 1.0, 2.0))
    return image


def test_extract_and_manifest_leak_no_patient(tmp_path):
    rng = np.random.default_rng(0)
    tables = []
    for index in range(5):
        mask = np.zeros((6, 20, 30), dtype=np.uint8)
        mask[1:5, 4:16, 5:25] = 1
        ct = np.where(mask, 40.0, -1000.0) + rng.normal(0, 5, mask.shape)
        mr = np.where(mask, 500.0 + rng.normal(0, 50, mask.shape), 0.0)
        settings = {"size": 32, "per_patient": None, "min_head_fraction": 0.2,
                    "ct_window_hu": [-1024, 2000], "mr_percentiles": [1, 99]}
        patient = f"case{index}"
        table = extract_patient_slices(_volume(mr), _volume(ct), sitk.Cast(_volume(mask), sitk.sitkUInt8),
                                       patient, settings, tmp_path / patient, synthetic=False)
        assert list(table["slice"]) == [1, 2, 3, 4]
        png = np.array(Image.open(table["ct_png"][0]))
        assert png.shape == (32, 32) and png.dtype == np.uint8
        assert Image.open(table["mr_png"][0]).mode == "L"
        path = tmp_path / f"{patient}.csv"
        table.to_csv(path, index=False)
        tables.append(path)
    manifest = build_manifest(tables, 0.7, seed=1)
    write_manifest(manifest, tmp_path / "manifest.csv")
    manifest = read_manifest(tmp_path / "manifest.csv")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    per_patient = manifest.groupby("patient")["split"].nunique()
    assert (per_patient == 1).all()
    assert manifest.groupby("split")["patient"].nunique().to_dict() == {"test": 1, "train": 4}
    # A CT pixel maps back to HU within half a quantisation step of the window.
    row = manifest.iloc[0]
    hu = from_uint8(np.array(Image.open(row["ct_png"])), row["ct_lo_hu"], row["ct_hi_hu"])
    assert np.median(hu[12:20, 12:20]) == pytest.approx(40, abs=15)


def test_manifest_reader_names_missing_columns(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"patient": ["a"], "slice": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="manifest.csv: missing manifest columns"):
        read_manifest(path)
