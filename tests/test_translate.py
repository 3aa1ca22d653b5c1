"""Volume translation: intensity windows, geometry and voxel order of the output, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from test_predict import write_generator
from tiny_slices import write_tiny_dataset

from mrct.inference.translate import Windows, auto_mr_window, main, resolve_windows, translate_array
from mrct.slices.manifest import read_manifest


def _head_volume(shape=(5, 20, 18), seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = (yy / 0.8) ** 2 + (xx / 0.7) ** 2 + (zz / 1.5) ** 2 < 1
    return np.where(inside, 600 + 100 * yy, 5.0) + rng.normal(0, 2, shape)


def test_translate_array_maps_windows_linearly_with_an_identity_network():
    volume = np.tile(np.linspace(0, 100, 18), (3, 20, 1))  # MR values 0..100 along columns
    out = translate_array(torch.nn.Identity(), volume, Windows(source=(0, 100), target=(-1000, 1000)), size=16)
    assert out.shape == volume.shape and out.dtype == np.float32
    expected = -1000 + volume / 100 * 2000
    # Quantisation to 8 bits and two resizes (18 -> 16 -> 18 columns) cost a little accuracy.
    assert np.abs(out - expected)[:, 2:-2, 2:-2].max() < 2000 / 255 * 3
    assert out.min() >= -1000 and out.max() <= 1000


def test_resolve_windows_prefers_explicit_then_manifest_then_auto(tmp_path):
    manifest = read_manifest(write_tiny_dataset(tmp_path, n_slices=1))
    volume = _head_volume()
    explicit = resolve_windows("mr2ct", volume, manifest, None, (-500, 500), (1, 2))
    assert explicit == Windows(source=(1.0, 2.0), target=(-500.0, 500.0))
    from_patient = resolve_windows("ct2mr", volume, manifest, "p01", None, None)
    assert from_patient == Windows(source=(-1024.0, 2000.0), target=(0.0, 1000.0))
    auto = resolve_windows("mr2ct", volume, manifest, None, None, None)
    assert auto.source == auto_mr_window(volume) and 400 < auto.source[0] < auto.source[1] < 800
    with pytest.raises(ValueError, match="ct-window"):
        resolve_windows("mr2ct", volume, None, None, None, None)
    with pytest.raises(ValueError, match="patient 'nobody'"):
        resolve_windows("mr2ct", volume, manifest, "nobody", None, None)
    with pytest.raises(ValueError, match="CT window"):
        resolve_windows("mr2ct", volume, None, None, (5, 5), None)


def assert_same_grid(image: sitk.Image, reference: sitk.Image) -> None:
    """Same voxel grid: size, spacing, origin and direction (the voxel order)."""
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)


def test_cli_keeps_geometry_and_voxel_order_of_the_input(tmp_path):
    write_generator(tmp_path / "model/G_mr2ct.pth", "mr2ct")
    image = sitk.GetImageFromArray(_head_volume().astype(np.float32))
    image.SetSpacing((0.9, 1.1, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS-stored voxels, as NIfTI files often are
    source = tmp_path / "mr.nii.gz"
    sitk.WriteImage(image, str(source))
    output = tmp_path / "out/sct.nii.gz"
    assert main(["--model-dir", str(tmp_path / "model"), "--direction", "mr2ct", "--input", str(source),
                 "--output", str(output), "--ct-window", "-1024", "2000"]) == 0
    result = sitk.ReadImage(str(output))
    assert_same_grid(result, sitk.ReadImage(str(source)))
    values = sitk.GetArrayFromImage(result)
    assert values.min() >= -1024 and values.max() <= 2000 and values.std() > 0
    with pytest.raises(SystemExit):
        main(["--model-dir", "x", "--direction", "sideways", "--input", "a", "--output", "b"])
