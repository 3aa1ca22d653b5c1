"""Slice geometry, 16-bit and 8-bit mapping, slice choice, and the split by patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from mrct.slices.extract import choose_slices, extract_patient_slices
from mrct.io.png import read_gray_png, write_gray_png
from mrct.slices.geometry import (
    as_uint8,
    from_levels,
    from_square,
    from_uint8,
    from_unit,
    full_scale,
    to_levels,
    to_square,
    to_uint8,
)
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


def test_16_bit_levels_keep_the_ct_window_below_one_hu():
    values = np.linspace(-1024, 3000, 100_001)
    levels = to_levels(values, -1024, 3000)
    assert levels.dtype == np.uint16 and levels.min() == 0 and levels.max() == 65535
    step = 4024 / 65535  # 0.061 HU per level
    assert np.abs(from_levels(levels, -1024, 3000) - values).max() <= step / 2 + 1e-9
    # the full scale comes from the pixels' type: an 8-bit slice of the same window maps back alike
    assert from_levels(np.array([0, 255], np.uint8), -1024, 3000).tolist() == [-1024, 3000]
    assert from_levels(np.array([0, 65535], np.uint16), -1024, 3000).tolist() == [-1024, 3000]
    assert full_scale(np.uint8) == 255 and full_scale(np.uint16) == 65535
    with pytest.raises(ValueError, match="uint8 or uint16, got int32"):
        from_levels(np.array([1], np.int32), 0, 1)
    # the network's [-1, 1] maps to the window's ends with no rounding
    assert from_unit(np.array([-1.0, 0.0, 1.0]), -1024, 3000).tolist() == [-1024, 988, 3000]


def test_as_uint8_is_the_8_bit_slice_of_the_same_window():
    values = np.random.default_rng(0).uniform(-1100, 3100, 20_000)
    rendered = as_uint8(to_levels(values, -1024, 3000))
    direct = to_uint8(values, -1024, 3000)
    assert rendered.dtype == np.uint8
    # equal but where the two roundings meet at a tie (then one gray level apart)
    assert np.abs(rendered.astype(int) - direct).max() <= 1
    assert (rendered == direct).mean() > 0.99
    eight = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(as_uint8(eight), eight)


def test_png_codec_keeps_16_bit_levels(tmp_path):
    levels = np.array([[0, 1, 2, 65535], [300, 40_000, 65534, 7]], dtype=np.uint16)
    write_gray_png(levels, tmp_path / "s.png")
    with Image.open(tmp_path / "s.png") as image:  # Pillow, not the codec, says what the file holds
        assert image.mode.startswith("I;16")
    assert (tmp_path / "s.png").read_bytes()[24] == 16  # IHDR bit depth
    back = read_gray_png(tmp_path / "s.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, levels)
    write_gray_png(levels.astype(np.uint8), tmp_path / "m.png")
    assert read_gray_png(tmp_path / "m.png").dtype == np.uint8
    with pytest.raises(ValueError, match="expected uint8 or uint16"):
        write_gray_png(levels.astype(np.int32), tmp_path / "x.png")


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
        assert png.shape == (32, 32) and png.dtype == np.uint16
        assert Image.open(table["mr_png"][0]).mode.startswith("I;16")  # MR is 16-bit too
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
    # A CT pixel maps back to HU through the window and the PNG's bit depth.
    row = manifest.iloc[0]
    hu = row["ct_lo_hu"] + np.array(Image.open(row["ct_png"])) / 65535 * (row["ct_hi_hu"] - row["ct_lo_hu"])
    assert np.median(hu[12:20, 12:20]) == pytest.approx(40, abs=3)


def test_white_and_grey_matter_are_stored_at_least_10_levels_apart(tmp_path):
    """25 HU (white matter) and 38 HU (grey matter) in the configured [-1024, 3000] HU window.

    8 bits put them one gray level apart (15.8 HU per level); the stored slices keep 13 HU as
    about 212 levels and map each back to within 0.031 HU.
    """
    mask = np.zeros((3, 24, 24), dtype=np.uint8)
    mask[:, 2:22, 2:22] = 1
    ct = np.full(mask.shape, -1000.0)
    ct[:, 2:22, 2:12], ct[:, 2:22, 12:22] = 25.0, 38.0  # left white matter, right grey matter
    mr = np.where(mask, 600.0, 0.0) + np.random.default_rng(1).normal(0, 20, mask.shape)
    settings = {"size": 24, "per_patient": None, "min_head_fraction": 0.2,
                "ct_window_hu": [-1024.0, 3000.0], "mr_percentiles": [1, 99]}
    table = extract_patient_slices(_volume(mr), _volume(ct), sitk.Cast(_volume(mask), sitk.sitkUInt8),
                                   "wm_gm", settings, tmp_path, synthetic=False)
    row = table.iloc[1]
    with Image.open(row["ct_png"]) as image:
        depth = Path(row["ct_png"]).read_bytes()[24]  # IHDR bit depth
        levels = np.asarray(image).astype(np.int64)
    white, grey = levels[5:20, 4:10], levels[5:20, 14:20]
    assert len(np.unique(white)) == len(np.unique(grey)) == 1
    assert grey[0, 0] - white[0, 0] >= 10
    top = 2**depth - 1
    for stored, hu in ((white[0, 0], 25.0), (grey[0, 0], 38.0)):
        assert row["ct_lo_hu"] + stored / top * (row["ct_hi_hu"] - row["ct_lo_hu"]) == pytest.approx(hu, abs=0.031)
    # the same two tissues in the 8-bit slices this pipeline stored before: one level apart
    assert int(to_uint8(38.0, -1024, 3000)) - int(to_uint8(25.0, -1024, 3000)) == 1


def test_manifest_reader_names_missing_columns(tmp_path):
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"patient": ["a"], "slice": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="manifest.csv: missing manifest columns"):
        read_manifest(path)
