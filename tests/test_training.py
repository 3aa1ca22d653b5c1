"""Training: settings, sampling, pool, strategies, pretrained start, resume == uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from tiny_slices import write_tiny_dataset

from mrct.models.networks import ResnetGenerator, init_weights
from mrct.models.pretrained import save_pretrained_generator
from mrct.models.trained import load_trained_generator
from mrct.slices.manifest import read_manifest
from mrct.training.build import build_networks
from mrct.training.data import epoch_batches, load_split, n_batches
from mrct.training.checkpoint import CheckpointClock
from mrct.training.hardware import autocast_dtype, backend_flags, memory_format, place
from mrct.training.loop import lr_factor, make_optimisers, train_model
from mrct.training.pool import ImagePool
from mrct.training.settings import TrainSettings, settings_from_config
from mrct.training.step import train_step

TINY = dict(model="skimage_photos", seed=3, ngf=4, n_blocks=1, ndf=4, d_layers=2, n_epochs=1, n_epochs_decay=1,
            batch_size=2, pool_size=4, device="cpu")
#: A checkpoint interval that is due after every step.
EVERY_STEP = 1e-9


@pytest.fixture
def tiny(tmp_path):
    manifest = write_tiny_dataset(tmp_path)
    pretrained = tmp_path / "pretrained.pth"
    torch.manual_seed(123)
    net = init_weights(ResnetGenerator(ngf=4, n_blocks=1))
    save_pretrained_generator(pretrained, net, source="test start", extra={})
    return tmp_path, manifest, pretrained


def _weights(path):
    return load_trained_generator(path).state_dict()


def test_settings_from_config_zoo_uses_zoo_architecture_and_registry_lambda():
    config = {"seed": 1, "network": {"ngf": 8, "ndf": 8, "n_blocks": 2},
              "train": {"lambda_cycle": None, "strategy": "adapters", "num_workers": 0}}
    zoo = settings_from_config(config, "sat2map")
    assert (zoo.ngf, zoo.n_blocks, zoo.ndf, zoo.lambda_cycle) == (64, 9, 64, 11.0)
    assert zoo.strategy == "adapters"
    local = settings_from_config(config, "skimage_photos")
    assert (local.ngf, local.n_blocks, local.ndf, local.lambda_cycle) == (8, 2, 8, 10.0)
    scratch = settings_from_config(config, "scratch")
    assert scratch.strategy == "full"
    fixed = settings_from_config({**config, "train": {"lambda_cycle": 7.5}}, "style_monet")
    assert fixed.lambda_cycle == 7.5
    with pytest.raises(ValueError, match="strategy"):
        TrainSettings(**{**TINY, "strategy": "bogus"})
    with pytest.raises(ValueError, match="n_epochs"):
        TrainSettings(**{**TINY, "n_epochs": 0, "n_epochs_decay": 0})


def test_fingerprint_changes_with_results_relevant_settings_only():
    base = TrainSettings(**TINY)
    for free in ({"checkpoint_minutes": 0.5}, {"device": "cuda:1"}):
        assert base.fingerprint(data="a") == dataclasses.replace(base, **free).fingerprint(data="a")
    for changing in ({"autocast": "bf16"}, {"compile": True}, {"tf32": False}, {"channels_last": False}):
        assert base.fingerprint(data="a") != dataclasses.replace(base, **changing).fingerprint(data="a")
    assert base.fingerprint(data="a") != dataclasses.replace(base, lr=1e-3).fingerprint(data="a")
    assert base.fingerprint(data="a") != base.fingerprint(data="b")


def test_max_steps_per_epoch_caps_every_epoch_and_is_part_of_the_fingerprint(tiny):
    root, manifest, pretrained = tiny
    full_batches = n_batches(load_split(read_manifest(manifest), "train", root), TINY["batch_size"])
    assert full_batches >= 3  # else the cap below would not cap
    steps = {}
    for cap in (None, 2):
        seen = []
        s = TrainSettings(**TINY, max_steps_per_epoch=cap)
        train_model(s, manifest, pretrained, root / f"cap{cap}", root / f"cap{cap}/ckpt.pt", root=root,
                    on_step_end=lambda epoch, step, seen=seen: seen.append((epoch, step)))
        steps[cap] = seen
    # on_step_end runs between steps, not after an epoch's last: one call per epoch for 2 steps
    assert steps[2] == [(0, 1), (1, 1)]
    assert len(steps[None]) == 2 * (full_batches - 1)
    assert TrainSettings(**TINY).fingerprint() != TrainSettings(**TINY, max_steps_per_epoch=2).fingerprint()
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        TrainSettings(**TINY, max_steps_per_epoch=0)


def test_lr_schedule_constant_then_linear_to_zero():
    factors = [lr_factor(e, 2, 3) for e in range(5)]
    assert factors == [1.0, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(5, 2, 3) == 0.0


def test_batches_are_seeded_unpaired_by_default_and_paired_on_request(tiny):
    root, manifest, _ = tiny
    data = load_split(read_manifest(manifest), "train", root)
    assert len(data.names) == 6 and data.size == 16
    a = list(epoch_batches(data, 0, 1, 2, paired=False, load_factor=1.25, flip=True))
    b = list(epoch_batches(data, 0, 1, 2, paired=False, load_factor=1.25, flip=True))
    assert len(a) == 3 and a[0][0].shape == (2, 3, 16, 16)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert a[0][0].min() >= -1 and a[0][0].max() <= 1
    assert torch.equal(a[0][0][:, 0], a[0][0][:, 2])  # three identical channels
    other_epoch = list(epoch_batches(data, 1, 1, 2, paired=False, load_factor=1.25, flip=True))
    assert not torch.equal(a[0][0], other_epoch[0][0])
    # Paired without jitter: each MR batch row is the MR of the CT row's own slice.
    paired = list(epoch_batches(data, 0, 1, 6, paired=True, load_factor=1.0, flip=False))
    mr, ct = paired[0]
    mr_u8 = ((mr[:, 0] + 1) * 127.5).round().to(torch.uint8)
    ct_u8 = ((ct[:, 0] + 1) * 127.5).round().to(torch.uint8)
    for i in range(6):
        j = [k for k in range(6) if torch.equal(data.ct[k], ct_u8[i])][0]
        assert torch.equal(data.mr[j], mr_u8[i])


def test_16_bit_slices_give_the_batches_of_their_8_bit_twins(tmp_path):
    """Level L of an 8-bit slice and level 257 L of a 16-bit one (65535 = 255 x 257) are one value."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    manifest_path = write_tiny_dataset(tmp_path / "eight", n_slices=2)
    manifest = read_manifest(manifest_path)
    for column in ("mr_png", "ct_png"):
        for rel in manifest[column]:
            target = tmp_path / "sixteen" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(Image.open(tmp_path / "eight" / rel)).astype(np.uint16) * 257).save(target)
    eight, sixteen = (load_split(manifest, "train", tmp_path / name) for name in ("eight", "sixteen"))
    assert eight.ct.dtype == torch.uint8 and sixteen.ct.dtype == torch.uint16
    for a, b in zip(epoch_batches(eight, 0, 1, 2, False, 1.25, True), epoch_batches(sixteen, 0, 1, 2, False, 1.25, True),
                    strict=True):
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)
    # one 8-bit CT among 16-bit ones would be read on the wrong scale: refused
    first = Path(manifest.loc[manifest["split"] == "train", "ct_png"].iloc[0])
    Image.open(tmp_path / "eight" / first).save(tmp_path / "sixteen" / first)
    with pytest.raises(ValueError, match=r"one bit depth for the CT slices of split 'train', got \['uint16', 'uint8'\]"):
        load_split(manifest, "train", tmp_path / "sixteen")


def test_image_pool_fills_then_mixes_and_restores_its_state():
    pool = ImagePool(2, seed=0)
    first = torch.arange(2.0).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first)
    state = pool.state_dict()
    new = torch.full((8, 1, 1, 1), 9.0)
    out = pool.query(new)
    assert {0.0, 1.0} & set(out.flatten().tolist())  # some old images come back
    twin = ImagePool(2, seed=99)
    twin.load_state_dict(state)
    assert torch.equal(twin.query(new), out)
    assert torch.equal(ImagePool(0, 0).query(new), new)


@pytest.mark.parametrize("strategy", ["freeze_encoder", "adapters"])
def test_frozen_parameters_do_not_change_in_a_step(tiny, strategy):
    root, manifest, pretrained = tiny
    s = TrainSettings(**{**TINY, "strategy": strategy, "adapter_units": 8})
    nets = build_networks(s, pretrained)
    frozen = {n: p.detach().clone() for n, p in nets.g_mr2ct.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in nets.g_mr2ct.named_parameters() if p.requires_grad}
    assert frozen and trainable
    if strategy == "adapters":
        assert all(n.startswith("adapter.") for n in trainable)
    else:
        assert all(n.startswith(("model.1.", "model.4.", "model.7.")) for n in frozen)
    data = load_split(read_manifest(manifest), "train", root)
    mr, ct = next(epoch_batches(data, 0, 0, 2, False, 1.0, False))
    opt = make_optimisers(nets, s, torch.device("cpu"))
    pools = (ImagePool(2, 0), ImagePool(2, 1))
    for _ in range(2):  # two steps: the adapter's first layer moves only once its zero output layer has
        losses = train_step(nets, opt, pools, mr, ct, s, torch.device("cpu"))
    assert {"G_mr2ct", "cycle_mr", "idt_ct", "D_ct", "D_mr"} <= set(losses)
    for name, before in frozen.items():
        assert torch.equal(dict(nets.g_mr2ct.named_parameters())[name], before), name
    changed = [n for n, before in trainable.items() if not torch.equal(dict(nets.g_mr2ct.named_parameters())[n], before)]
    assert len(changed) == len(trainable)


def test_pretrained_start_differs_from_scratch_and_is_used(tiny):
    root, manifest, pretrained = tiny
    s = TrainSettings(**TINY)
    scratch_nets = build_networks(dataclasses.replace(s, model="scratch"), None)
    pre_nets = build_networks(s, pretrained)
    start = torch.load(pretrained, weights_only=True)["state_dict"]
    assert all(torch.equal(pre_nets.g_mr2ct.state_dict()[k], v) for k, v in start.items())
    assert all(torch.equal(pre_nets.g_ct2mr.state_dict()[k], v) for k, v in start.items())
    assert not torch.equal(scratch_nets.g_mr2ct.model[1].weight, pre_nets.g_mr2ct.model[1].weight)

    # The trained result depends on the start: same data, same seed, different starting weights.
    train_model(s, manifest, pretrained, root / "a", root / "a/ckpt.pt", root=root)
    other = root / "other.pth"
    torch.manual_seed(999)
    save_pretrained_generator(other, init_weights(ResnetGenerator(ngf=4, n_blocks=1)), source="other", extra={})
    train_model(s, manifest, other, root / "b", root / "b/ckpt.pt", root=root)
    a, b = _weights(root / "a/G_mr2ct.pth"), _weights(root / "b/G_mr2ct.pth")
    assert not torch.equal(a["model.1.weight"], b["model.1.weight"])


class Killed(Exception):
    pass


def test_resume_after_kill_equals_uninterrupted_run(tiny):
    root, manifest, pretrained = tiny
    s = TrainSettings(**TINY, checkpoint_minutes=EVERY_STEP)
    straight = train_model(s, manifest, pretrained, root / "straight", root / "straight/resume/ckpt.pt", root=root)
    assert list(straight["epoch"]) == [1, 2]
    assert {"loss_G_mr2ct", "loss_cycle_ct", "loss_D_mr", "lr", "seconds"} <= set(straight.columns)
    assert straight["lr"].tolist() == [pytest.approx(2e-4), pytest.approx(1e-4)]
    assert not (root / "straight/resume/ckpt.pt").exists()  # cleaned up after success

    def kill_after_first(epoch):
        if epoch == 1:
            raise Killed

    ckpt = root / "resumed/resume/ckpt.pt"
    with pytest.raises(Killed):
        train_model(s, manifest, pretrained, root / "resumed", ckpt, root=root, on_epoch_end=kill_after_first)
    assert ckpt.exists() and not (root / "resumed/G_mr2ct.pth").exists()
    torch.manual_seed(4321)  # a fresh process has another global random state: must not matter
    resumed = train_model(s, manifest, pretrained, root / "resumed", ckpt, root=root)
    for direction in ("mr2ct", "ct2mr"):
        a = _weights(root / f"straight/G_{direction}.pth")
        b = _weights(root / f"resumed/G_{direction}.pth")
        for key in a:
            assert torch.equal(a[key], b[key]), (direction, key)
    cols = [c for c in straight.columns if c != "seconds"]
    pd.testing.assert_frame_equal(straight[cols], resumed[cols])
    on_disk = pd.read_csv(root / "resumed/train_log.csv")
    assert list(on_disk["epoch"]) == [1, 2]
    assert set(on_disk["start"]) == {"skimage_photos (locally pretrained on scikit-image photos, not a zoo model)"}


def test_checkpoint_of_other_settings_is_discarded(tiny, caplog):
    root, manifest, pretrained = tiny
    s = TrainSettings(**TINY, checkpoint_minutes=EVERY_STEP)
    ckpt = root / "run/resume/ckpt.pt"

    def stop(epoch):
        raise Killed

    with pytest.raises(Killed):
        train_model(s, manifest, pretrained, root / "run", ckpt, root=root, on_epoch_end=stop)
    changed = dataclasses.replace(s, lr=1e-3)
    with caplog.at_level("WARNING"):
        table = train_model(changed, manifest, pretrained, root / "run", ckpt, root=root)
    assert "other settings" in caplog.text
    assert table["lr"].iloc[0] == pytest.approx(1e-3)


def test_adapters_and_paired_run_end_to_end(tiny):
    root, manifest, pretrained = tiny
    s = TrainSettings(**{**TINY, "strategy": "adapters", "adapter_units": 8, "lambda_paired": 1.0,
                         "n_epochs_decay": 0})
    table = train_model(s, manifest, pretrained, root / "ad", root / "ad/ckpt.pt", root=root)
    assert "loss_paired" in table.columns
    net = load_trained_generator(root / "ad/G_ct2mr.pth")
    assert net.adapter is not None and net.architecture["adapter_units"] == 8
    payload = torch.load(root / "ad/G_ct2mr.pth", weights_only=True)
    assert payload["direction"] == "ct2mr" and payload["strategy"] == "adapters"
    assert "not a zoo model" in payload["label"]
    # Frozen pretrained layers came through training untouched.
    start = torch.load(pretrained, weights_only=True)["state_dict"]
    assert all(torch.equal(net.state_dict()[k], v) for k, v in start.items())


def test_scratch_refuses_pretrained_weights(tiny):
    root, manifest, pretrained = tiny
    s = TrainSettings(**{**TINY, "model": "scratch"})
    with pytest.raises(ValueError, match="scratch"):
        train_model(s, manifest, pretrained, root / "x", root / "x/ckpt.pt", root=root)


def test_photo_pretraining_is_deterministic_labelled_and_loads_as_a_start(tmp_path):
    from mrct.models.pretrain_photos import LABEL, PretrainSettings, load_photos, pretrain_to_file
    from mrct.models.pretrained import load_pretrained_generator

    photos = load_photos()
    assert len(photos) >= 10 and all(p.min() >= 0 and p.max() <= 1 for p in photos)
    s = PretrainSettings(ngf=4, n_blocks=1, iterations=3, crop_size=16, batch_size=2, lr=1e-3, seed=5)
    losses_a = pretrain_to_file(s, tmp_path / "a.pth")
    losses_b = pretrain_to_file(s, tmp_path / "b.pth")
    assert losses_a == losses_b
    a = torch.load(tmp_path / "a.pth", weights_only=True)
    b = torch.load(tmp_path / "b.pth", weights_only=True)
    assert a["source"] == LABEL and "not a zoo model" in LABEL
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    start = init_weights(ResnetGenerator(ngf=4, n_blocks=1), generator=torch.Generator().manual_seed(5))
    assert not torch.equal(start.model[1].weight, a["state_dict"]["model.1.weight"])  # it trained
    net = load_pretrained_generator(tmp_path / "a.pth", {"input_nc": 3, "output_nc": 3, "ngf": 4, "n_blocks": 1})
    assert torch.equal(net.model[1].weight, a["state_dict"]["model.1.weight"])


# A training job as the train rule runs it: its own process, one thread. With a marker path it
# writes the marker after batch 1 of epoch 1 and waits there until the test removes the marker
# (after sending SIGTERM), so the signal arrives mid-epoch at a known place.
TRAIN_JOB = """
import json, sys, time
from pathlib import Path
import torch
from mrct.training.loop import train_model
from mrct.training.settings import TrainSettings
settings, manifest, pretrained, out, root, marker = json.loads(sys.argv[1])
torch.set_num_threads(1)
def on_step_end(epoch, step):
    if marker and (epoch, step) == (0, 1):
        Path(marker).write_text("waiting")
        deadline = time.monotonic() + 120
        while Path(marker).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
train_model(TrainSettings(**settings), manifest, pretrained, out, Path(out) / "resume/ckpt.pt", root=root,
            on_step_end=on_step_end)
"""


def _train_job(s, manifest, pretrained, out, root, marker=None):
    args = json.dumps([dataclasses.asdict(s), str(manifest), str(pretrained), str(out), str(root),
                       str(marker) if marker else ""])
    return subprocess.Popen([sys.executable, "-c", TRAIN_JOB, args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_sigterm_mid_epoch_saves_exits_nonzero_and_the_rerun_matches_an_uninterrupted_run(tiny):
    root, manifest, pretrained = tiny
    s = TrainSettings(**TINY)  # the default 10-minute interval: only the signal saves here
    straight = _train_job(s, manifest, pretrained, root / "straight", root)

    marker = root / "marker"
    job = _train_job(s, manifest, pretrained, root / "stopped", root, marker)
    deadline = time.monotonic() + 120
    while not marker.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), job.communicate()[0]
    job.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    marker.unlink()
    output = job.communicate(timeout=120)[0]
    assert job.returncode == 128 + signal.SIGTERM, output
    ckpt = torch.load(root / "stopped/resume/ckpt.pt", weights_only=True)
    progress = ckpt["progress"]
    assert (progress["epoch"], progress["step"], progress["rows"]) == (0, 1, [])  # inside epoch 1 of 2
    assert progress["loss_sums"].shape == (len(progress["loss_names"]),)
    assert not (root / "stopped/G_mr2ct.pth").exists()

    rerun = _train_job(s, manifest, pretrained, root / "stopped", root)
    assert rerun.wait(timeout=300) == 0, rerun.communicate()[0]
    assert straight.wait(timeout=300) == 0, straight.communicate()[0]
    assert not (root / "stopped/resume/ckpt.pt").exists()
    for direction in ("mr2ct", "ct2mr"):
        a = _weights(root / f"straight/G_{direction}.pth")
        b = _weights(root / f"stopped/G_{direction}.pth")
        assert all(torch.equal(a[k], b[k]) for k in a), direction
    # The epoch that was cut in two reports the same mean losses (partial sums were saved).
    logs = [pd.read_csv(root / f"{run}/train_log.csv").drop(columns="seconds") for run in ("straight", "stopped")]
    pd.testing.assert_frame_equal(*logs)


def test_checkpoint_clock_and_frozen_layers_left_out(tiny):
    now = [0.0]
    clock = CheckpointClock(2.0, clock=lambda: now[0])
    now[0] = 119.0
    assert not clock.due()
    now[0] = 120.0
    assert clock.due()
    clock.reset()
    assert not clock.due()
    # Adapters: the frozen pretrained layers are not in the checkpoint, and a resume rebuilds them.
    root, manifest, pretrained = tiny
    s = TrainSettings(**{**TINY, "strategy": "adapters", "adapter_units": 8}, checkpoint_minutes=EVERY_STEP)

    def stop(epoch):
        raise Killed

    with pytest.raises(Killed):
        train_model(s, manifest, pretrained, root / "ad", root / "ad/ckpt.pt", root=root, on_epoch_end=stop)
    saved = torch.load(root / "ad/ckpt.pt", weights_only=True)["nets"]["g_mr2ct"]
    assert saved and all(k.startswith("adapter.") for k in saved)
    train_model(s, manifest, pretrained, root / "ad", root / "ad/ckpt.pt", root=root)
    start = torch.load(pretrained, weights_only=True)["state_dict"]
    net = load_trained_generator(root / "ad/G_mr2ct.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in start.items())


def test_autocast_choice_and_cuda_layout_flags_without_a_gpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("none", cuda) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", cpu)
    s = TrainSettings(**TINY)
    assert memory_format(s, cpu) == torch.contiguous_format  # the bit-exact CPU path
    assert memory_format(s, cuda) == torch.channels_last
    assert memory_format(dataclasses.replace(s, channels_last=False), cuda) == torch.contiguous_format
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.benchmark)
    with backend_flags(s, cuda):
        assert torch.backends.cuda.matmul.fp32_precision == "tf32" and torch.backends.cudnn.benchmark
        assert not torch.are_deterministic_algorithms_enabled()
    with backend_flags(dataclasses.replace(s, tf32=False), cuda):
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    with backend_flags(s, cpu):
        assert torch.are_deterministic_algorithms_enabled()
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.benchmark) == before


def _two_steps(tiny, **changes):
    root, manifest, pretrained = tiny
    s = TrainSettings(**{**TINY, **changes})
    cpu = torch.device("cpu")
    nets = build_networks(s, pretrained)
    for _, net in nets.items():
        place(net, s, cpu)
    opt = make_optimisers(nets, s, cpu)
    pools = (ImagePool(2, 0), ImagePool(2, 1))
    batches = list(epoch_batches(load_split(read_manifest(manifest), "train", root), 0, 0, 2, False, 1.0, False))
    return [train_step(nets, opt, pools, mr, ct, s, cpu) for mr, ct in batches[:2]]


def test_bf16_autocast_step_runs_on_cpu_with_finite_losses_close_to_fp32(tiny):
    fp32 = _two_steps(tiny)
    bf16 = _two_steps(tiny, autocast="bf16")
    for a, b in zip(fp32, bf16, strict=True):
        assert a.keys() == b.keys()
        assert all(v.device.type == "cpu" and v.dim() == 0 for v in b.values())  # tensors: no host read
        assert all(torch.isfinite(v) for v in b.values())
        assert all(torch.allclose(a[k], b[k], rtol=0.05, atol=1e-3) for k in a)
    assert any(not torch.equal(fp32[0][k], bf16[0][k]) for k in fp32[0])  # bf16 did run


@pytest.mark.slow  # the first compilation takes 1-2 minutes on a 2-core machine (later: cached)
def test_compiled_networks_train_like_eager_ones(tiny):
    eager = _two_steps(tiny)
    compiled = _two_steps(tiny, compile=True)
    for a, b in zip(eager, compiled, strict=True):
        assert all(torch.isfinite(v) for v in b.values())
        assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-5) for k in a), (a, b)
