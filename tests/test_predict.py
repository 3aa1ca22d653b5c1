"""Prediction of the test split: file names, both directions, values from the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_slices import write_tiny_dataset

from mrct.inference.predict import predict_test_split, translate_images
from mrct.models.networks import ResnetGenerator, init_weights
from mrct.models.trained import GENERATOR_FORMAT
from mrct.slices.manifest import read_manifest


def write_generator(path, direction, seed=0):
    torch.manual_seed(seed)
    net = init_weights(ResnetGenerator(ngf=4, n_blocks=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": GENERATOR_FORMAT, "model": "scratch", "label": "scratch", "direction": direction,
                "architecture": net.architecture, "strategy": "full", "image_size": 16,
                "state_dict": net.state_dict()}, path)
    return net


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_translate_images_matches_the_network_in_float(dtype):
    net = ResnetGenerator(ngf=4, n_blocks=1).eval()
    top = np.iinfo(dtype).max
    images = np.random.default_rng(0).integers(0, top + 1, (3, 16, 16)).astype(dtype)
    out = translate_images(net, images, batch_size=2)
    assert out.dtype == np.float32 and out.shape == images.shape
    x = torch.from_numpy(images.astype(np.float64)).float().unsqueeze(1) / (top / 2) - 1
    with torch.no_grad():
        expected = net(x.expand(-1, 3, -1, -1)).mean(1).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert len(np.unique(out)) > 200  # not rounded to any gray-level grid
    identity = translate_images(torch.nn.Identity(), images)
    np.testing.assert_allclose(identity, images / (top / 2) - 1, atol=1e-6)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        translate_images(net, images.astype(np.float32))


def test_predict_writes_test_split_under_ground_truth_names(tmp_path):
    manifest_path = write_tiny_dataset(tmp_path, {"a": "train", "b": "test", "c": "test"}, n_slices=2)
    model_dir = tmp_path / "results/models/scratch"
    nets = {d: write_generator(model_dir / f"G_{d}.pth", d, seed=i) for i, d in enumerate(("mr2ct", "ct2mr"))}
    out = {d: tmp_path / f"results/predictions/scratch/{d}" for d in ("mr2ct", "ct2mr")}
    manifest = read_manifest(manifest_path)
    written = predict_test_split(model_dir, manifest, out, root=tmp_path, batch_size=3)
    expected = sorted(f"{p}_z{z:03d}.png" for p in ("b", "c") for z in range(2))
    for direction in out:
        assert sorted(p.name for p in out[direction].iterdir()) == expected
        assert len(written[direction]) == 4
    # The mr2ct file of slice b_z001 is G_mr2ct applied to that slice's MR PNG, stored in 16 bits:
    # level 0 is the network's -1 and 65535 its +1 (one level of slack: a batch of 3 rounds its
    # float sums in another order than a batch of 1).
    mr = np.asarray(Image.open(tmp_path / "results/slices/b/mr/b_z001.png"))
    want = np.rint((translate_images(nets["mr2ct"].eval(), mr[None])[0] + 1) / 2 * 65535)
    got = np.asarray(Image.open(out["mr2ct"] / "b_z001.png"))
    assert got.dtype == np.uint16
    np.testing.assert_allclose(got, want, rtol=0, atol=1)
    ct = np.asarray(Image.open(tmp_path / "results/slices/b/ct/b_z001.png"))
    np.testing.assert_allclose(np.asarray(Image.open(out["ct2mr"] / "b_z001.png")),
                               np.rint((translate_images(nets["ct2mr"].eval(), ct[None])[0] + 1) / 2 * 65535),
                               rtol=0, atol=1)


def test_predict_without_test_split_or_generator_fails_clearly(tmp_path):
    manifest = read_manifest(write_tiny_dataset(tmp_path, {"a": "train", "b": "train"}, n_slices=1))
    with pytest.raises(ValueError, match="test slice"):
        predict_test_split(tmp_path, manifest, {"mr2ct": tmp_path / "o"}, root=tmp_path)
    manifest = read_manifest(write_tiny_dataset(tmp_path, {"a": "train", "b": "test"}, n_slices=1))
    with pytest.raises(FileNotFoundError, match="G_mr2ct.pth"):
        predict_test_split(tmp_path / "nomodel", manifest, {"mr2ct": tmp_path / "o"}, root=tmp_path)
