"""The pix2pix family: reference U-Net layout, strict loads of published files, settings, the
conditional PatchGAN + L1 step, and training, prediction and latent features of a paired model."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from conftest import Route
from tiny_slices import write_tiny_dataset

from mrct.evaluation.latent import bottleneck_statistics
from mrct.inference.predict import predict_test_split
from mrct.models.networks import NLayerDiscriminator, ResnetGenerator, count_parameters, init_weights
from mrct.models.pretrained import fetch_zoo_weights, load_pretrained_generator
from mrct.models.registry import (
    downloadable_models,
    is_zoo_model,
    load_pix2pix_zoo,
    load_zoo_registry,
    model_family,
    model_label,
    pix2pix_zoo_architecture,
    published_generator,
    starts_from_file,
)
from mrct.models.trained import generator_metadata, load_trained_generator
from mrct.models.unet import UnetGenerator
from mrct.slices.manifest import read_manifest
from mrct.training.loop import train_model
from mrct.training.pix2pix_build import build_pix2pix_networks
from mrct.training.pix2pix_step import pix2pix_train_step
from mrct.training.settings import TrainSettings, check_slice_size, settings_from_config, unet_downs_for_size

UNET_256 = published_generator("pix2pix_sat2map")[1]
#: A small paired model: 32 px slices, 5 down-samplings (1x1 bottleneck), 4 filters.
TINY = dict(model="pix2pix_scratch", seed=3, ngf=4, n_blocks=0, ndf=4, d_layers=2, num_downs=5, lambda_l1=100.0,
            lambda_cycle=0.0, lambda_identity=0.0, pool_size=0, n_epochs=1, n_epochs_decay=1, batch_size=2,
            device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread (a shared machine makes more threads much slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _published_state_dict(net: UnetGenerator, counters: bool = True) -> dict[str, torch.Tensor]:
    """Random weights and batch-norm statistics under the published keys, as a bare state dict
    (optionally without ``num_batches_tracked``, as files saved before PyTorch 0.4.1)."""
    gen = torch.Generator().manual_seed(5)
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            if counters:
                state[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=gen) * 0.05
    return state


def test_unet_256_has_the_reference_layout_and_parameter_count():
    net = UnetGenerator(**UNET_256)
    assert count_parameters(net) == 54_413_955 == pix2pix_zoo_architecture()["n_parameters"]
    keys = list(net.state_dict())
    assert keys[0] == "model.model.0.weight" and keys[-2:] == ["model.model.3.weight", "model.model.3.bias"]
    assert "model.model.0.bias" not in keys  # batch norm follows: no bias, as in the reference
    assert "model.model.1.model.2.running_mean" in keys and "model.model.1.model.6.num_batches_tracked" in keys
    innermost = "model.model.1" + ".model.3" * 6
    assert f"{innermost}.model.1.weight" in keys and f"{innermost}.model.4.running_var" in keys
    assert f"{innermost}.model.5.weight" not in keys  # the innermost level has 5 modules
    # Dropout closes the middle levels of 8 * ngf channels (levels 4-6 of 0-7), as pix2pix trains.
    levels = net.levels()
    assert [isinstance(b.model[-1], torch.nn.Dropout) for b in levels] == [False] * 4 + [True] * 3 + [False]
    assert net.bottleneck(torch.zeros(1, 3, 256, 256)).shape == (1, 512, 1, 1)


def test_scratch_unet_depth_follows_the_slice_size():
    assert [unet_downs_for_size(s) for s in (16, 32, 64, 96, 256, 512)] == [4, 5, 6, 5, 8, 8]
    with pytest.raises(ValueError, match="slices.size"):
        unet_downs_for_size(18)
    net = init_weights(UnetGenerator(num_downs=3, ngf=4))
    x = torch.randn(2, 3, 16, 16)
    assert net(x).shape == (2, 3, 16, 16) and net(x).abs().max() <= 1
    assert net.bottleneck(x).shape == (2, 16, 2, 2)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 3, 12, 12))


def test_old_files_without_batch_norm_counters_load_and_other_gaps_fail(tmp_path):
    arch = {**UNET_256, "num_downs": 5, "ngf": 4}
    net = UnetGenerator(**arch)
    path = tmp_path / "old.pth"
    torch.save(_published_state_dict(net, counters=False), path)
    loaded = load_pretrained_generator(path, arch, "unet")
    assert all(int(v) == 0 for k, v in loaded.state_dict().items() if k.endswith("num_batches_tracked"))
    state = _published_state_dict(net)
    del state["model.model.1.model.2.running_mean"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"old.pth: does not fit .*missing keys: model\.model\.1\.model\.2\.running_mean"):
        load_pretrained_generator(path, arch, "unet")
    torch.save(init_weights(ResnetGenerator(ngf=4, n_blocks=1)).state_dict(), path)  # a CycleGAN file
    with pytest.raises(ValueError, match="unexpected keys: model.1.weight"):
        load_pretrained_generator(path, arch, "unet")


def test_registry_names_the_pix2pix_zoo_apart_from_the_cyclegan_zoo():
    pix2pix = load_pix2pix_zoo()
    assert set(pix2pix) == {f"pix2pix_{n}" for n in
                            ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night")}
    assert not set(pix2pix) & set(load_zoo_registry())
    assert pix2pix["pix2pix_sat2map"]["url"] == "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/sat2map.pth"
    assert downloadable_models()["sat2map"].endswith("/cyclegan/pretrained_models/sat2map.pth")
    assert {model_family(n) for n in pix2pix} == {"pix2pix"} == {model_family("pix2pix_scratch")}
    assert model_family("sat2map") == model_family("scratch") == "cyclegan"
    assert published_generator("sat2map")[0] == "resnet" and published_generator("pix2pix_sat2map")[0] == "unet"
    assert starts_from_file("pix2pix_day2night") and not starts_from_file("pix2pix_scratch")
    assert not is_zoo_model("pix2pix_map2sat")
    assert "pix2pix" in model_label("pix2pix_map2sat") and "not pretrained" in model_label("pix2pix_scratch")


def test_settings_of_pix2pix_models_and_the_slice_size_check():
    config = {"seed": 1, "slices": {"size": 64}, "models": ["scratch", "pix2pix_scratch"],
              "network": {"ngf": 8, "ndf": 8, "n_blocks": 2, "d_layers": 3},
              "train": {"lambda_cycle": None, "lambda_l1": 50.0, "pool_size": 50, "strategy": "full"}}
    scratch = settings_from_config(config, "pix2pix_scratch")
    assert (scratch.ngf, scratch.ndf, scratch.num_downs, scratch.lambda_l1) == (8, 8, 6, 50.0)
    assert (scratch.lambda_cycle, scratch.lambda_identity, scratch.pool_size) == (0.0, 0.0, 0)
    assert scratch.paired_data and scratch.generator_kind == "unet"
    zoo = settings_from_config(config, "pix2pix_edges2shoes")
    assert (zoo.ngf, zoo.num_downs, zoo.ndf, zoo.d_layers) == (64, 8, 64, 3)
    assert zoo.generator_architecture == UNET_256
    # Each family's settings ignore the other family's weights (no rerun when they change).
    other = {**config, "train": {**config["train"], "lambda_l1": 10.0, "lambda_identity": 0.1}}
    assert settings_from_config(other, "scratch").lambda_identity == 0.1
    assert settings_from_config(other, "scratch").lambda_l1 == settings_from_config(config, "scratch").lambda_l1 == 0
    assert settings_from_config(other, "pix2pix_scratch").lambda_identity == 0.0
    check_slice_size(config)
    with pytest.raises(ValueError, match=r"slices.size: model pix2pix_sat2map .* multiple of 256 px, got 64"):
        check_slice_size({**config, "models": ["pix2pix_sat2map"]})
    check_slice_size({**config, "slices": {"size": 256}, "models": ["pix2pix_sat2map"]})
    with pytest.raises(ValueError, match="train.strategy: adapters"):
        settings_from_config({**config, "train": {"strategy": "adapters"}}, "pix2pix_map2sat")
    assert settings_from_config({**config, "train": {"strategy": "adapters"}}, "pix2pix_scratch").strategy == "full"


def test_conditional_discriminator_sees_source_and_target():
    s = TrainSettings(**TINY)
    nets = build_pix2pix_networks(s, None)
    assert isinstance(nets.d_ct, NLayerDiscriminator) and nets.d_ct.model[0].in_channels == 6
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in nets.d_mr.modules())
    assert isinstance(nets.g_mr2ct, UnetGenerator) and nets.g_mr2ct.architecture["num_downs"] == 5


def _optimisers(nets, s):
    from mrct.training.loop import make_optimisers

    return make_optimisers(nets, s, torch.device("cpu"))


def test_pix2pix_step_weights_l1_by_lambda_and_updates_both_directions():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses = {}
    for weight in (100.0, 1.0):
        s = TrainSettings(**{**TINY, "lambda_l1": weight})
        nets = build_pix2pix_networks(s, None)
        for _, net in nets.items():
            net.train()
        before = {n: [p.clone() for p in net.parameters()] for n, net in nets.items()}
        torch.manual_seed(1)  # the same dropout masks for both weights
        losses[weight] = pix2pix_train_step(nets, _optimisers(nets, s), (None, None), x, y, s, torch.device("cpu"))
        for name, net in nets.items():
            assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)), name
    assert set(losses[1.0]) == {"G_mr2ct", "L1_mr2ct", "G_ct2mr", "L1_ct2mr", "D_ct", "D_mr"}
    for key in ("L1_mr2ct", "L1_ct2mr"):
        assert float(losses[100.0][key]) == pytest.approx(100 * float(losses[1.0][key]), rel=1e-5)
    assert float(losses[1.0]["G_mr2ct"]) == pytest.approx(float(losses[100.0]["G_mr2ct"]), rel=1e-5)


@pytest.fixture
def paired(tmp_path):
    return tmp_path, write_tiny_dataset(tmp_path, size=32)


def test_pix2pix_scratch_trains_resumes_exactly_predicts_and_has_latent_features(paired):
    root, manifest = paired
    s = TrainSettings(**TINY, checkpoint_minutes=1e-9)
    straight = train_model(s, manifest, None, root / "a", root / "a/ckpt.pt", root=root)
    assert {"loss_L1_mr2ct", "loss_G_ct2mr", "loss_D_ct"} <= set(straight.columns)
    assert not any("cycle" in c for c in straight.columns)

    class Killed(Exception):
        pass

    def kill(epoch):
        raise Killed

    with pytest.raises(Killed):
        train_model(s, manifest, None, root / "b", root / "b/ckpt.pt", root=root, on_epoch_end=kill)
    train_model(s, manifest, None, root / "b", root / "b/ckpt.pt", root=root)
    for direction in ("mr2ct", "ct2mr"):
        a = load_trained_generator(root / f"a/G_{direction}.pth").state_dict()
        b = load_trained_generator(root / f"b/G_{direction}.pth").state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), direction
    meta = generator_metadata(root / "a/G_mr2ct.pth")
    assert meta["network"] == "unet" and meta["architecture"]["num_downs"] == 5 and meta["image_size"] == 32

    written = predict_test_split(root / "a", read_manifest(manifest),
                                 {"mr2ct": root / "pred/mr2ct", "ct2mr": root / "pred/ct2mr"}, root=root)
    assert len(written["mr2ct"]) == len(written["ct2mr"]) == 3
    generator = load_trained_generator(root / "a/G_ct2mr.pth")
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    features = bottleneck_statistics(generator, images, 2, "cpu")
    assert features.shape == (3, 2 * 32)  # innermost 8 * ngf channels, mean and std
    # eval mode (running statistics, no dropout): the same input gives the same features
    assert np.array_equal(features, bottleneck_statistics(generator, images, 3, "cpu"))


def test_freeze_encoder_keeps_the_pretrained_down_path(paired, tmp_path):
    arch = {**UNET_256, "num_downs": 5, "ngf": 4}
    start = UnetGenerator(**arch)
    path = tmp_path / "start.pth"
    state = _published_state_dict(start)
    torch.save(state, path)
    s = TrainSettings(**{**TINY, "model": "pix2pix_day2night", "strategy": "freeze_encoder"})
    nets = build_pix2pix_networks(s, path)
    for _, net in nets.items():
        net.train()
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    pix2pix_train_step(nets, _optimisers(nets, s), (None, None), x, y, s, torch.device("cpu"))
    after = nets.g_mr2ct.state_dict()
    encoder = [f"model.model.{k}" for k in ("0.weight", "1.model.1.weight", "1.model.2.weight",
                                            "1.model.2.running_mean", "1.model.2.running_var")]
    assert all(torch.equal(after[k], state[k]) for k in encoder)
    assert not torch.equal(after["model.model.3.weight"], state["model.model.3.weight"])  # the decoder trains


def test_published_pix2pix_file_loads_strictly_and_fine_tunes_at_256_px(tmp_path):
    """A unet_256 file in the published layout (random weights and batch-norm statistics) loads
    strictly, its running statistics are used, and it fine-tunes (one step on a 256-px pair)."""
    net = UnetGenerator(**UNET_256)
    state = _published_state_dict(net)
    path = tmp_path / "edges2shoes.pth"
    torch.save(state, path)
    loaded = load_pretrained_generator(path, UNET_256, "unet").eval()
    assert isinstance(loaded, UnetGenerator)
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    net.load_state_dict({k: v for k, v in state.items() if "running" not in k}, strict=False)  # fresh statistics
    with torch.no_grad():
        out = loaded(x)
        assert out.shape == (1, 3, 256, 256) and not torch.allclose(out, net.eval()(x))
    del net, loaded

    # Fine-tuning as rule train builds it (both directions from the file, conditional Ds), two
    # steps on one 256-px pair; train_model itself is exercised on small slices above (a
    # unet_256 checkpoint with its Adam moments would write over 1 GB here).
    config = {"seed": 2, "slices": {"size": 256}, "models": ["pix2pix_edges2shoes"], "network": {},
              "train": {"batch_size": 1}}
    s = dataclasses.replace(settings_from_config(config, "pix2pix_edges2shoes"), device="cpu")
    nets = build_pix2pix_networks(s, path)
    for _, module in nets.items():
        module.train()
    opt = _optimisers(nets, s)
    mr, ct = torch.rand(1, 3, 256, 256) * 2 - 1, torch.rand(1, 3, 256, 256) * 2 - 1
    for _ in range(2):
        losses = pix2pix_train_step(nets, opt, (None, None), mr, ct, s, torch.device("cpu"))
    assert all(torch.isfinite(v) for v in losses.values())
    tuned = nets.g_mr2ct.state_dict()
    assert set(tuned) == set(state)
    assert not torch.equal(tuned["model.model.0.weight"], state["model.model.0.weight"])
    assert not torch.equal(tuned["model.model.1.model.2.running_mean"], state["model.model.1.model.2.running_mean"])


def test_pix2pix_zoo_download_records_the_digest_and_refuses_a_cyclegan_file(file_server, tmp_path):
    arch = {**UNET_256, "num_downs": 4, "ngf": 4}
    payloads = {"day2night.pth": _published_state_dict(UnetGenerator(**arch)),
                "sat2map.pth": init_weights(ResnetGenerator(ngf=4, n_blocks=1)).state_dict()}
    for name, state in payloads.items():
        buffer = io.BytesIO()
        torch.save(state, buffer)
        file_server.routes[name] = Route(buffer.getvalue())
    dest, lock = tmp_path / "pix2pix_day2night.pth", tmp_path / "pix2pix_day2night.lock"
    fetch_zoo_weights(file_server.url("day2night.pth"), dest, arch, lock_file=lock, retries=1, timeout=10,
                      kind="unet")
    assert dest.is_file() and "day2night.pth" in lock.read_text(encoding="utf-8")
    bad, bad_lock = tmp_path / "pix2pix_sat2map.pth", tmp_path / "pix2pix_sat2map.lock"
    with pytest.raises(ValueError, match="pix2pix_sat2map.pth: does not fit"):
        fetch_zoo_weights(file_server.url("sat2map.pth"), bad, arch, lock_file=bad_lock, retries=1, timeout=10,
                          kind="unet")
    assert not bad.exists() and not bad_lock.exists()


def test_the_schema_lists_every_registry_model():
    from mrct.config import load_schema
    from mrct.models.registry import LOCAL_MODELS

    schema_models = set(load_schema()["properties"]["models"]["items"]["enum"])
    assert schema_models == {*LOCAL_MODELS, *load_zoo_registry(), *load_pix2pix_zoo()}
