"""Volume translation: intensity windows, geometry and voxel order of the output, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from test_predict import write_generator
from tiny_slices import write_tiny_dataset

from mrct.inference.translate import Windows, auto_mr_window, main, resolve_windows, translate_array
from mrct.models.networks import ResnetGenerator, init_weights, to_network_input
from mrct.slices.geometry import to_levels
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
    # Two resizes (18 -> 16 -> 18 columns) cost a little accuracy; 16-bit levels on the way in, none out.
    assert np.abs(out - expected)[:, 2:-2, 2:-2].max() < 2.0
    assert out.min() >= -1000 and out.max() <= 1000


def test_synthetic_ct_is_not_confined_to_a_gray_level_grid():
    """The volume goes from the network's float output straight to HU.

    Slices of the network's size (no resizing) make the old path exact: through 8 bits every HU
    value was -1024 + k * 15.8 (4024 HU / 255). Now the values fall anywhere, off the 15.8 HU grid
    and off the 16-bit one (0.061 HU), and equal the network's output mapped linearly to HU.
    """
    torch.manual_seed(0)
    net = init_weights(ResnetGenerator(ngf=4, n_blocks=1)).eval()
    volume = _head_volume(shape=(2, 16, 16))
    window = Windows(source=(0.0, 800.0), target=(-1024.0, 3000.0))
    out = translate_array(net, volume, window, size=16).astype(np.float64)
    for step in (4024 / 255, 4024 / 65535):
        offset = np.abs((out + 1024) / step - np.rint((out + 1024) / step)) * step
        assert (offset > 0.05 * step).mean() > 0.5, step
    levels = to_levels(volume, 0.0, 800.0)
    with torch.no_grad():
        unit = net(to_network_input(torch.from_numpy(levels))).mean(1).numpy()
    np.testing.assert_allclose(out, -1024 + (unit + 1) / 2 * 4024, atol=1e-3)


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
