"""The epoch loop: build, resume, train, checkpoint, log; final generators written at the end.

Outputs of ``train_model`` in ``out_dir``: ``G_mr2ct.pth`` and ``G_ct2mr.pth`` (format
``mrct-generator-1``, see mrct.models.networks), ``train_log.csv`` (one row per epoch: mean of every
loss, learning rate, seconds) and ``training.json`` (what was trained: seed, strategy, learning
rate, trainable and total parameters of the two generators, epochs, seconds; gathered into
``results/tables/training.csv``). Nothing final is written before the last epoch, so a killed job
never leaves generators that look finished. The resumable state lives in ``checkpoint_path``,
which is not a Snakemake output (Snakemake would delete it when the job fails). It is saved
every ``checkpoint_minutes``, after the last epoch, and when SIGTERM or SIGUSR1 arrives (then
the run stops with ``TrainingInterrupted``, see mrct.training.signals); it may lie inside an
epoch, and a resumed run ends with the same weights as an uninterrupted one (bit-exact on CPU).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from mrct.io.atomic import write_text_atomic
from mrct.io.device import resolve_device
from mrct.models.registry import is_zoo_model, model_label, starts_from_file
from mrct.models.trained import save_trained_generator
from mrct.slices.manifest import read_manifest
from mrct.training.build import CycleGANNets, build_networks
from mrct.training.checkpoint import CheckpointClock, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mrct.training.data import SliceSet, epoch_batches, load_split, n_batches
from mrct.training.hardware import autocast_dtype, backend_flags, memory_format, place
from mrct.training.pix2pix_build import build_pix2pix_networks
from mrct.training.pix2pix_step import pix2pix_train_step
from mrct.training.pool import ImagePool
from mrct.training.settings import TrainSettings
from mrct.training.signals import StopRequest, TrainingInterrupted, stop_on_signals
from mrct.training.step import Optimisers, train_step

#: Per model family (mrct.models.registry): how its networks are built and how one step trains them.
FAMILY_TRAINING = {
    "cyclegan": (build_networks, train_step),
    "pix2pix": (build_pix2pix_networks, pix2pix_train_step),
}

log = logging.getLogger(__name__)


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Learning-rate multiplier of 0-based ``epoch``: 1 for ``n_epochs``, then linear towards 0."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def make_optimisers(nets: CycleGANNets, s: TrainSettings, device: torch.device) -> Optimisers:
    """Adam(lr, (beta1, 0.999)) over the trainable parameters of both Gs, and of both Ds."""
    g_params = [p for g in nets.generators() for p in g.parameters() if p.requires_grad]
    d_params = [p for d in nets.discriminators() for p in d.parameters() if p.requires_grad]
    return Optimisers(
        torch.optim.Adam(g_params, lr=s.lr, betas=(s.beta1, 0.999)),
        torch.optim.Adam(d_params, lr=s.lr, betas=(s.beta1, 0.999)),
        torch.amp.GradScaler(device.type, enabled=autocast_dtype(s.autocast, device) == torch.float16),
    )


def _file_digest(path: str | Path | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _data_digest(data: SliceSet) -> str:
    digest = hashlib.sha256()
    for tensor in (data.mr, data.ct):
        digest.update(tensor.numpy().tobytes())
    digest.update("\n".join(data.names).encode())
    return digest.hexdigest()


def train_model(
    settings: TrainSettings,
    manifest: str | Path,
    pretrained: str | Path | None,
    out_dir: str | Path,
    checkpoint_path: str | Path,
    root: str | Path = ".",
    on_epoch_end: Callable[[int], None] | None = None,
    on_step_end: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Train (or resume) one model; return the per-epoch log that is also written as CSV.

    ``on_epoch_end(epochs_done)`` and ``on_step_end(epoch, steps_done_in_epoch)`` are hooks for
    tests and progress reports. SIGTERM/SIGUSR1 stop the run after a checkpoint (see above).
    """
    s, out_dir = settings, Path(out_dir)
    if (pretrained is not None) != starts_from_file(s.model):
        raise ValueError(f"model {s.model}: expected a pretrained weight file exactly when the registry says it "
                         f"starts from one ({starts_from_file(s.model)}), got {pretrained!r}")
    if is_zoo_model(s.model) and (s.ngf, s.n_blocks) != (64, 9):
        raise ValueError(f"model {s.model}: zoo models use ngf 64 and 9 blocks, got {s.ngf}, {s.n_blocks}")
    device = resolve_device(s.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    autocast_dtype(s.autocast, device)  # a precision the device cannot run fails here, not mid-run
    hooks = (on_epoch_end, on_step_end)
    with backend_flags(s, device), stop_on_signals() as stop:
        return _train(s, device, manifest, pretrained, out_dir, checkpoint_path, root, hooks, stop)


def _trainable_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict without frozen parameters: they equal the start, which is rebuilt on resume."""
    frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    return {k: v for k, v in net.state_dict().items() if k not in frozen}


def _load_trainable_state(net: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) != frozen:
        raise ValueError(f"checkpoint: {name} does not match the network (missing {missing}, unexpected {unexpected})")


@dataclass
class RunState:
    """Everything that evolves during training, with one state_dict for the checkpoint."""

    nets: CycleGANNets
    opt: Optimisers
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    pools: tuple[ImagePool, ImagePool]

    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": {name: _trainable_state(net) for name, net in self.nets.items()},
            "opt_g": self.opt.generators.state_dict(),
            "opt_d": self.opt.discriminators.state_dict(),
            "scaler": self.opt.scaler.state_dict(),
            "schedulers": [sched.state_dict() for sched in self.schedulers],
            "pools": [pool.state_dict() for pool in self.pools],
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        for name, net in self.nets.items():
            _load_trainable_state(net, state["nets"][name], name)
        self.opt.generators.load_state_dict(state["opt_g"])
        self.opt.discriminators.load_state_dict(state["opt_d"])
        self.opt.scaler.load_state_dict(state["scaler"])
        for sched, sched_state in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(sched_state)
        for pool, pool_state in zip(self.pools, state["pools"], strict=True):
            pool.load_state_dict(pool_state, device)
        set_rng_state(state["rng"])


@dataclass
class Progress:
    """Where the run stands: log rows of finished epochs, and inside the current epoch the
    batches done, the loss sums (float64, on the device: read once per epoch) and seconds spent."""

    rows: list[dict[str, float]]
    epoch: int = 0
    step: int = 0
    loss_names: tuple[str, ...] = ()
    loss_sums: torch.Tensor | None = None
    seconds: float = 0.0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        values = torch.stack(list(losses.values())).to(torch.float64)
        if self.loss_sums is None:
            self.loss_names, self.loss_sums = tuple(losses), values
        else:
            self.loss_sums += values
        self.step += 1

    def state_dict(self) -> dict[str, Any]:
        sums = None if self.loss_sums is None else self.loss_sums.cpu()
        return {"rows": self.rows, "epoch": self.epoch, "step": self.step, "loss_names": list(self.loss_names),
                "loss_sums": sums, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> Progress:
        sums = state["loss_sums"]
        return cls(list(state["rows"]), state["epoch"], state["step"], tuple(state["loss_names"]),
                   None if sums is None else sums.to(device), state["seconds"])


def _start(s: TrainSettings, pretrained: str | Path | None, device: torch.device) -> RunState:
    build, _ = FAMILY_TRAINING[s.family]
    nets = build(s, pretrained)
    for _, net in nets.items():
        place(net, s, device)
    opt = make_optimisers(nets, s, device)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda e: lr_factor(e, s.n_epochs, s.n_epochs_decay))
        for o in (opt.generators, opt.discriminators)
    ]
    return RunState(nets, opt, schedulers, (ImagePool(s.pool_size, s.seed + 1), ImagePool(s.pool_size, s.seed + 2)))


def _to_device(batch: torch.Tensor, device: torch.device, memory: torch.memory_format) -> torch.Tensor:
    """Copy a CPU batch to ``device`` without making the host wait (pinned memory on CUDA)."""
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True).contiguous(memory_format=memory)


def _run_epoch(run: RunState, data: SliceSet, progress: Progress, s: TrainSettings, device: torch.device,
               between_steps: Callable[[], None]) -> dict[str, float]:
    """Finish the epoch ``progress`` stands in; return its log row (mean losses, lr, seconds).

    ``between_steps`` runs after every step but the epoch's last (it may save and stop).
    """
    tic = time.perf_counter() - progress.seconds
    lr = run.opt.generators.param_groups[0]["lr"]
    memory = memory_format(s, device)
    count = n_batches(data, s.batch_size)
    if s.max_steps_per_epoch is not None:
        count = min(count, s.max_steps_per_epoch)
    _, step = FAMILY_TRAINING[s.family]
    batches = itertools.islice(epoch_batches(data, progress.epoch, s.seed, s.batch_size, s.paired_data,
                                             s.load_factor, s.flip, skip=progress.step), count - progress.step)
    desc = f"{s.model} epoch {progress.epoch + 1}/{s.total_epochs}"
    for mr, ct in tqdm(batches, initial=progress.step, total=count, desc=desc, mininterval=5.0, ascii=True):
        mr, ct = _to_device(mr, device, memory), _to_device(ct, device, memory)
        progress.add(step(run.nets, run.opt, run.pools, mr, ct, s, device))
        progress.seconds = time.perf_counter() - tic
        if progress.step < count:
            between_steps()
    for sched in run.schedulers:
        sched.step()
    means = (progress.loss_sums / count).tolist()  # the epoch's one read-back from the device
    return {"epoch": progress.epoch + 1, **{f"loss_{k}": v for k, v in zip(progress.loss_names, means, strict=True)},
            "lr": lr, "seconds": time.perf_counter() - tic}


def training_summary(s: TrainSettings, nets: CycleGANNets, rows: list[dict[str, float]]) -> dict[str, Any]:
    """What one run trained, for ``results/tables/training.csv``: parameters of the two generators
    (the discriminators train in full in every model, so they say nothing about transfer)."""
    parameters = [p for g in nets.generators() for p in g.parameters()]
    return {"model": s.model, "seed": s.seed, "strategy": s.strategy, "lr": s.lr,
            "trainable_parameters": sum(p.numel() for p in parameters if p.requires_grad),
            "total_parameters": sum(p.numel() for p in parameters),
            "epochs": s.total_epochs, "seconds": float(sum(row["seconds"] for row in rows))}


def _train(s: TrainSettings, device: torch.device, manifest: str | Path, pretrained: str | Path | None,
           out_dir: Path, checkpoint_path: str | Path, root: str | Path,
           hooks: tuple[Callable[[int], None] | None, Callable[[int, int], None] | None],
           stop: StopRequest) -> pd.DataFrame:
    on_epoch_end, on_step_end = hooks
    label = model_label(s.model)
    log.info("training %s on %s: %s", label, device, s)
    data = load_split(read_manifest(manifest), "train", root)
    s.check_image_size(data.size)
    fingerprint = s.fingerprint(data=_data_digest(data), pretrained=_file_digest(pretrained))
    run = _start(s, pretrained, device)
    progress = Progress(rows=[])
    state = load_checkpoint(checkpoint_path, fingerprint)
    if state is not None:
        run.load_state_dict(state, device)
        progress = Progress.from_state(state["progress"], device)
        log.info("resumed from %s at epoch %d of %d, batch %d", checkpoint_path, progress.epoch + 1,
                 s.total_epochs, progress.step)
    clock = CheckpointClock(s.checkpoint_minutes)
    written = 0

    def save(why: str) -> None:
        nonlocal written
        size = save_checkpoint(checkpoint_path, {"fingerprint": fingerprint, "progress": progress.state_dict(),
                                                 **run.state_dict()})
        clock.reset()
        written += size
        log.info("checkpoint (%s) at epoch %d, batch %d: %.1f MB, %.2f GB written so far", why, progress.epoch + 1,
                 progress.step, size / 1e6, written / 1e9)

    def save_if_due() -> None:
        if stop or clock.due():
            save("signal" if stop else "interval")
        if stop:
            log.warning("stopping on signal %s; rerun to resume", stop.signum)
            raise TrainingInterrupted(stop.signum)

    def between_steps() -> None:
        if on_step_end is not None:
            on_step_end(progress.epoch, progress.step)
        save_if_due()

    while progress.epoch < s.total_epochs:
        row = _run_epoch(run, data, progress, s, device, between_steps)
        progress.rows.append(row)
        progress.epoch, progress.step, progress.loss_sums, progress.seconds = progress.epoch + 1, 0, None, 0.0
        log.info("epoch %d/%d: %s", progress.epoch, s.total_epochs,
                 ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        if progress.epoch == s.total_epochs:
            save("end")
        else:
            save_if_due()  # the epoch boundary is a step boundary too
        if on_epoch_end is not None:
            on_epoch_end(progress.epoch)

    rows = progress.rows
    out_dir.mkdir(parents=True, exist_ok=True)
    for direction, net in (("mr2ct", run.nets.g_mr2ct), ("ct2mr", run.nets.g_ct2mr)):
        save_trained_generator(out_dir / f"G_{direction}.pth", net, model=s.model, label=label,
                               direction=direction, strategy=s.strategy, image_size=data.size)
    # Every output names where the model started: zoo category, local photos, or random init.
    table = pd.DataFrame(rows).assign(model=s.model, start=label)
    write_text_atomic(out_dir / "train_log.csv", table.to_csv(index=False))
    write_text_atomic(out_dir / "training.json", json.dumps(training_summary(s, run.nets, rows), indent=1))
    log.info("wrote %s/G_mr2ct.pth, G_ct2mr.pth, train_log.csv and training.json", out_dir)
    # The finished run needs no resume state; a zoo-sized checkpoint is ~0.4 GB per model.
    Path(checkpoint_path).unlink(missing_ok=True)
    return table
