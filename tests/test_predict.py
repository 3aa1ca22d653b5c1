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


def test_translate_images_matches_the_network_and_keeps_uint8():
    net = ResnetGenerator(ngf=4, n_blocks=1).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16), dtype=np.uint8)
    out = translate_images(net, images, batch_size=2)
    assert out.dtype == np.uint8 and out.shape == images.shape
    x = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
    with torch.no_grad():
        y = net(x.expand(-1, 3, -1, -1)).mean(1)
    expected = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(out, expected)
    identity = translate_images(torch.nn.Identity(), images)
    np.testing.assert_array_equal(identity, images)
    with pytest.raises(ValueError, match="uint8"):
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
    # The mr2ct file of slice b_z001 is G_mr2ct applied to that slice's MR PNG.
    mr = np.asarray(Image.open(tmp_path / "results/slices/b/mr/b_z001.png"))
    want = translate_images(nets["mr2ct"].eval(), mr[None])[0]
    got = np.asarray(Image.open(out["mr2ct"] / "b_z001.png"))
    np.testing.assert_array_equal(got, want)
    ct = np.asarray(Image.open(tmp_path / "results/slices/b/ct/b_z001.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(out["ct2mr"] / "b_z001.png")),
                                  translate_images(nets["ct2mr"].eval(), ct[None])[0])


def test_predict_without_test_split_or_generator_fails_clearly(tmp_path):
    manifest = read_manifest(write_tiny_dataset(tmp_path, {"a": "train", "b": "train"}, n_slices=1))
    with pytest.raises(ValueError, match="test slice"):
        predict_test_split(tmp_path, manifest, {"mr2ct": tmp_path / "o"}, root=tmp_path)
    manifest = read_manifest(write_tiny_dataset(tmp_path, {"a": "train", "b": "test"}, n_slices=1))
    with pytest.raises(FileNotFoundError, match="G_mr2ct.pth"):
        predict_test_split(tmp_path / "nomodel", manifest, {"mr2ct": tmp_path / "o"}, root=tmp_path)
