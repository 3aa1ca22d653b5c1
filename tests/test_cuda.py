"""The CUDA path, run where a GPU is present (skipped elsewhere: CI has none).

The CPU tests pin the arithmetic bit for bit; on a GPU the project switches to bf16 autocast,
channels_last activations, TF32 and cuDNN autotuning (``mrct.training.hardware``), none of which is
bit-exact. These tests check what must still hold there: training and resuming run and write
weight files a CPU-only machine loads, translations agree with the CPU's to within the rounding
of those formats, and the evaluation's feature network gives the CPU's features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_slices import write_tiny_dataset

from mrct.inference.predict import translate_images
from mrct.io.device import resolve_device
from mrct.models.random_embedding import RandomEmbedding, random_embedding_features
from mrct.models.trained import load_trained_generator
from mrct.training.hardware import autocast_dtype
from mrct.training.loop import train_model
from mrct.training.settings import TrainSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CYCLEGAN = dict(model="scratch", seed=3, ngf=8, n_blocks=2, ndf=8, d_layers=2, n_epochs=1, n_epochs_decay=1,
                batch_size=2, pool_size=4, device="cuda")
PIX2PIX = dict(model="pix2pix_scratch", seed=3, ngf=4, n_blocks=0, ndf=4, d_layers=2, num_downs=5, lambda_l1=100.0,
               lambda_cycle=0.0, lambda_identity=0.0, pool_size=0, n_epochs=1, n_epochs_decay=1, batch_size=2,
               device="cuda")


class Killed(Exception):
    pass


def _cpu_tensors(path) -> bool:
    payload = torch.load(path, map_location="meta", weights_only=False)
    state = payload["state_dict"] if isinstance(payload, dict) and "state_dict" in payload else payload
    return all(t.device.type == "meta" for t in state.values())  # loads anywhere: no CUDA storage required


def test_auto_device_is_the_gpu_and_autocast_is_bf16_on_it():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert autocast_dtype("auto", device) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else None)


@pytest.mark.parametrize("settings", [CYCLEGAN, PIX2PIX], ids=["cyclegan", "pix2pix"])
def test_training_on_the_gpu_resumes_and_writes_weights_a_cpu_loads(tmp_path, settings):
    manifest = write_tiny_dataset(tmp_path, size=32, bits=16)
    s = TrainSettings(**settings, checkpoint_minutes=1e-9)
    torch.cuda.reset_peak_memory_stats()
    straight = train_model(s, manifest, None, tmp_path / "a", tmp_path / "a/ckpt.pt", root=tmp_path)
    assert torch.cuda.max_memory_allocated() > 0  # it ran on the GPU
    losses = straight.filter(like="loss_")
    assert len(losses.columns) >= 4 and np.isfinite(losses.to_numpy()).all()

    def kill(epoch):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train_model(s, manifest, None, tmp_path / "b", tmp_path / "b/ckpt.pt", root=tmp_path, on_epoch_end=kill)
    saved = torch.load(tmp_path / "b/ckpt.pt", map_location="cpu", weights_only=False)
    (first_epoch,) = saved["progress"]["rows"]  # on the CPU: the checkpoint holds no CUDA tensors
    resumed = train_model(s, manifest, None, tmp_path / "b", tmp_path / "b/ckpt.pt", root=tmp_path)
    assert list(resumed["epoch"]) == [1, 2]
    # epoch 1 comes from the checkpoint, not from a second training
    assert {k: resumed.iloc[0][k] for k in first_epoch if k.startswith("loss_")} == {
        k: v for k, v in first_epoch.items() if k.startswith("loss_")}
    for direction in ("mr2ct", "ct2mr"):
        path = tmp_path / f"b/G_{direction}.pth"
        assert _cpu_tensors(path), path
        a = load_trained_generator(tmp_path / f"a/G_{direction}.pth").state_dict()
        b = load_trained_generator(path).state_dict()  # on the CPU
        assert a.keys() == b.keys()
        # bf16 and cuDNN autotuning are not bit-exact, but two runs of the same seed stay close
        drift = max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point())
        assert drift < 0.05, (direction, drift)


def test_gpu_translations_agree_with_the_cpu(tmp_path):
    manifest = write_tiny_dataset(tmp_path, size=32, bits=16)
    s = TrainSettings(**CYCLEGAN)
    train_model(s, manifest, None, tmp_path / "a", tmp_path / "a/ckpt.pt", root=tmp_path)
    generator = load_trained_generator(tmp_path / "a/G_mr2ct.pth")
    images = np.random.default_rng(0).integers(0, 65536, (6, 32, 32), dtype=np.uint16)
    on_cpu = translate_images(generator, images, batch_size=4, device="cpu")
    on_gpu = translate_images(generator, images, batch_size=4, device="cuda")
    assert on_gpu.dtype == np.float32 and on_gpu.shape == on_cpu.shape
    # cuDNN may use TF32 for fp32 convolutions: 10 mantissa bits, about 1e-3 relative
    assert np.abs(on_gpu - on_cpu).max() < 2e-2


def test_the_fid_feature_network_gives_the_cpu_features_on_the_gpu():
    images = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    net = RandomEmbedding()
    on_cpu = random_embedding_features(net, images, batch_size=2, device="cpu")
    on_gpu = random_embedding_features(net, images, batch_size=2, device="cuda")
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=2e-2, atol=2e-3)
