"""mrct.io.volumes: formats, orientation, and one test per bad input (each names the file)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mrct.io.volumes import VolumeError, read_volume, write_volume


def _raises_naming(path: Path, pattern: str):  # noqa: ANN202 - a pytest context manager
    """pytest.raises(VolumeError) whose message holds the file's path, then ``pattern``."""
    return pytest.raises(VolumeError, match=re.escape(str(path)) + ".*" + pattern)


# -- good inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha", "ct.mhd"])
def test_reads_each_file_format_as_float32(make_volume, name: str, rng) -> None:  # noqa: ANN001
    array = rng.integers(-1000, 1500, size=(6, 7, 8)).astype(np.int16)
    path = make_volume(name, array, spacing=(0.9, 1.1, 2.5))
    image = read_volume(path, "ct")
    assert image.GetPixelID() == sitk.sitkFloat32
    assert image.GetSize() == (8, 7, 6)
    np.testing.assert_allclose(image.GetSpacing(), (0.9, 1.1, 2.5), rtol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array.astype(np.float32))


def _write_dicom_series(volume: sitk.Image, folder: Path, series_uid: str) -> None:
    """One DICOM file per axial slice with the position tags a series reader sorts by."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.GetDepth()):
        slice_k = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",  # study instance UID
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),  # instance number
            "0020|0032": "\\".join(f"{v:.4f}" for v in position),  # image position (patient)
            "0020|0037": "1\\0\\0\\0\\1\\0",  # image orientation (patient)
            "0018|0050": f"{volume.GetSpacing()[2]:.4f}",  # slice thickness
        }
        for tag, value in tags.items():
            slice_k.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_k)


def test_reads_a_dicom_series_folder(tmp_path: Path, rng) -> None:  # noqa: ANN001
    array = rng.integers(-1000, 1500, size=(5, 8, 8)).astype(np.int16)
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing((0.8, 0.8, 2.0))
    _write_dicom_series(volume, tmp_path / "ct", "1.2.826.0.1.3680043.2.1125.2")
    image = read_volume(tmp_path / "ct", "ct")
    assert image.GetSize() == (8, 8, 5)
    np.testing.assert_allclose(image.GetSpacing(), (0.8, 0.8, 2.0), rtol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array.astype(np.float32))


def test_dicom_folder_with_two_series_takes_the_larger(tmp_path: Path, rng) -> None:  # noqa: ANN001
    big = sitk.GetImageFromArray(rng.integers(0, 500, size=(6, 8, 8)).astype(np.int16))
    small = sitk.GetImageFromArray(rng.integers(0, 500, size=(3, 8, 8)).astype(np.int16))
    _write_dicom_series(big, tmp_path / "mr" / "a", "1.2.826.0.1.3680043.2.1125.3")
    _write_dicom_series(small, tmp_path / "mr" / "b", "1.2.826.0.1.3680043.2.1125.4")
    image = read_volume(tmp_path / "mr", "mr")
    assert image.GetSize() == (8, 8, 6)


def test_ras_and_lps_niftis_of_the_same_head_give_the_same_array(tmp_path: Path, rng) -> None:  # noqa: ANN001
    # The same physical voxels stored in two orders: nibabel's affine maps indices to RAS+ world
    # coordinates; the identity stores i towards the Right, the other flips i and j (LPS storage).
    n = 8
    data = rng.normal(size=(n, n, n)).astype(np.float32)
    ras = nib.Nifti1Image(data, np.eye(4))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = n - 1  # voxel i of the flipped file lies where voxel n-1-i of the other does
    lps = nib.Nifti1Image(np.ascontiguousarray(data[::-1, ::-1, :]), flip)
    nib.save(ras, tmp_path / "ras.nii.gz")
    nib.save(lps, tmp_path / "lps.nii.gz")

    a = read_volume(tmp_path / "ras.nii.gz", "mr")
    b = read_volume(tmp_path / "lps.nii.gz", "mr")
    for image in (a, b):
        code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
        assert code == "LPS"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-5)
    # The RAS file's i axis points to the Right, so LPS order reverses it.
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a)[:, 0, :], data[::-1, n - 1, :].T)


def test_write_volume_round_trip_leaves_no_temp_file(tmp_path: Path, make_volume) -> None:  # noqa: ANN001
    image = read_volume(make_volume("mr.nii.gz"), "mr")
    target = tmp_path / "out" / "mr_copy.nii.gz"
    write_volume(image, target)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(target))),
                                  sitk.GetArrayFromImage(image))
    assert [p.name for p in target.parent.iterdir()] == ["mr_copy.nii.gz"]


def test_ct_that_looks_unrescaled_is_warned_about_and_left_unchanged(make_volume, caplog) -> None:  # noqa: ANN001
    array = np.full((8, 8, 8), 1024, dtype=np.int16)
    array[2:6, 2:6, 2:6] = 1064
    path = make_volume("ct.nii.gz", array)
    with caplog.at_level(logging.WARNING, logger="mrct.io.volumes"):
        image = read_volume(path, "ct")
    assert str(path) in caplog.text and "rescale intercept" in caplog.text
    assert float(sitk.GetArrayViewFromImage(image).min()) == 1024.0


# -- bad inputs: one test each ------------------------------------------------------------------


def test_missing_modality(tmp_path: Path) -> None:
    path = tmp_path / "p01" / "ct.nii.gz"
    with _raises_naming(path, "CT image not found"):
        read_volume(path, "ct")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "mr.mha"
    path.write_bytes(b"this is not an image\n" * 20)
    with _raises_naming(path, "unreadable"):
        read_volume(path, "mr")


def test_truncated_nifti_gz(make_volume) -> None:  # noqa: ANN001
    array = np.random.default_rng(1).normal(size=(8, 8, 8)).astype(np.float32)
    path = make_volume("mr.nii.gz", array)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with _raises_naming(path, "truncated"):
        read_volume(path, "mr")


def test_truncated_uncompressed_nifti(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.nii")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with _raises_naming(path, "truncated NIfTI file.*2048 bytes"):
        read_volume(path, "mr")


def test_truncated_nrrd(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.nrrd")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with _raises_naming(path, "unreadable or truncated"):
        read_volume(path, "mr")


def test_itk_alone_zero_fills_a_truncated_nifti(make_volume) -> None:  # noqa: ANN001
    """Why volume_io checks NIfTI sizes itself: ITK reads a cut file without error, nibabel does not.

    If a SimpleITK upgrade makes this fail, ITK has started to check and the hand-written
    check in volume_io can go.
    """
    path = make_volume("mr.nii")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    image = sitk.ReadImage(str(path))  # no error
    assert image.GetSize() == (8, 8, 8)
    assert not sitk.GetArrayViewFromImage(image)[7].any(), "the missing half reads as zeros"
    with pytest.raises(Exception):  # noqa: B017 - nibabel's own, independent check
        nib.load(str(path)).get_fdata()


def test_itk_alone_reads_nan_in_nifti_as_zero(make_volume) -> None:  # noqa: ANN001
    """Why volume_io checks NIfTI values with nibabel too (see _check_nifti_data)."""
    array = np.ones((8, 8, 8), dtype=np.float32)
    array[3, 4, 5] = np.nan
    path = make_volume("mr.nii.gz", array)
    assert not np.isnan(sitk.GetArrayViewFromImage(sitk.ReadImage(str(path)))).any()
    assert np.isnan(nib.load(str(path)).get_fdata()).sum() == 1


@pytest.mark.parametrize("name", ["mr.nii.gz", "mr.nrrd", "mr.mha"])
def test_nan_values_in_each_format(make_volume, name: str) -> None:  # noqa: ANN001
    array = np.ones((8, 8, 8), dtype=np.float32)
    array[1, 2, 3] = np.nan
    path = make_volume(name, array)
    with _raises_naming(path, "NaN"):
        read_volume(path, "mr")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "ct.nii.gz"
    path.touch()
    with _raises_naming(path, "empty file"):
        read_volume(path, "ct")


def test_two_dimensional_image(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.nrrd", np.arange(64, dtype=np.float32).reshape(8, 8))
    with _raises_naming(path, "2-D image"):
        read_volume(path, "mr")


def test_single_slice_volume(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.nii.gz", np.arange(64, dtype=np.float32).reshape(1, 8, 8))
    with _raises_naming(path, "fewer than 2 voxels"):
        read_volume(path, "mr")


def test_four_dimensional_image(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.nii.gz", np.arange(2 * 8 * 8 * 8, dtype=np.float32).reshape(2, 8, 8, 8))
    with _raises_naming(path, "4-D image"):
        read_volume(path, "mr")


def test_vector_image(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.mha", np.ones((8, 8, 8, 3), dtype=np.float32), is_vector=True)
    with _raises_naming(path, "vector image with 3 components"):
        read_volume(path, "mr")


def test_constant_volume(make_volume) -> None:  # noqa: ANN001
    path = make_volume("ct.nii.gz", np.full((8, 8, 8), -1000.0, dtype=np.float32))
    with _raises_naming(path, "constant"):
        read_volume(path, "ct")


def test_all_zero_volume(make_volume) -> None:  # noqa: ANN001
    path = make_volume("mr.nii.gz", np.zeros((8, 8, 8), dtype=np.float32))
    with _raises_naming(path, "empty \\(all zero\\) volume"):
        read_volume(path, "mr")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_values(make_volume, bad: float, rng) -> None:  # noqa: ANN001
    array = rng.normal(size=(8, 8, 8)).astype(np.float32)
    array[3, 4, 5] = bad
    path = make_volume("mr.nii.gz", array)
    with _raises_naming(path, "1 voxel\\(s\\) are NaN or infinite"):
        read_volume(path, "mr")


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 0.01), (25.0, 1.0, 1.0), (1.0, 1e-6, 1.0)])
def test_absurd_spacing(make_volume, spacing: tuple[float, float, float]) -> None:  # noqa: ANN001
    path = make_volume("mr.nii.gz", spacing=spacing)
    with _raises_naming(path, "absurd voxel spacing"):
        read_volume(path, "mr")


def test_folder_without_dicom_series(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    folder.mkdir()
    (folder / "notes.txt").write_text("not dicom")
    with _raises_naming(folder, "no DICOM series"):
        read_volume(folder, "ct")


def test_unknown_modality_is_a_value_error(make_volume) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="'pet'"):
        read_volume(make_volume("mr.nii.gz"), "pet")
