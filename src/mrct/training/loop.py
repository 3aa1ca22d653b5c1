"""The epoch loop: build, resume, train, checkpoint, log; final generators written at the end.

Outputs of ``train_model`` in ``out_dir``: ``G_mr2ct.pth`` and ``G_ct2mr.pth`` (format
``mrct-generator-1``, see mrct.models.networks) and ``train_log.csv`` (one row per epoch: mean of every
loss, learning rate, seconds). Nothing final is written before the last epoch, so a killed job
never leaves generators that look finished. The resumable state lives in ``checkpoint_path``,
which is not a Snakemake output (Snakemake would delete it when the job fails).
"""

from __future__ import annotations

import hashlib
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
from mrct.models.registry import is_zoo_model, model_label, starts_from_file
from mrct.models.trained import save_trained_generator
from mrct.slices.manifest import read_manifest
from mrct.training.build import CycleGANNets, build_networks
from mrct.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mrct.training.data import SliceSet, epoch_batches, load_split, n_batches
from mrct.training.pool import ImagePool
from mrct.training.settings import TrainSettings
from mrct.training.step import Optimisers, train_step

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: cuda requested but no CUDA device is available")
    return torch.device(name)


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
        torch.amp.GradScaler(device.type, enabled=s.autocast == "fp16" and device.type == "cuda"),
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
) -> pd.DataFrame:
    """Train (or resume) one model; return the per-epoch log that is also written as CSV."""
    s, out_dir = settings, Path(out_dir)
    if (pretrained is not None) != starts_from_file(s.model):
        raise ValueError(f"model {s.model}: expected a pretrained weight file exactly when the registry says it "
                         f"starts from one ({starts_from_file(s.model)}), got {pretrained!r}")
    if is_zoo_model(s.model) and (s.ngf, s.n_blocks) != (64, 9):
        raise ValueError(f"model {s.model}: zoo models use ngf 64 and 9 blocks, got {s.ngf}, {s.n_blocks}")
    device = resolve_device(s.device)
    previous = torch.are_deterministic_algorithms_enabled()
    # Bit-for-bit repeatable on CPU; on CUDA some kernels (reflection-pad backward) have no
    # deterministic version, so there the run is seeded but not bit-exact. The global flag is
    # restored afterwards so that callers (and other tests in the same process) are unaffected.
    torch.use_deterministic_algorithms(device.type == "cpu")
    try:
        return _train(s, device, manifest, pretrained, out_dir, checkpoint_path, root, on_epoch_end)
    finally:
        torch.use_deterministic_algorithms(previous)


@dataclass
class RunState:
    """Everything that evolves during training, with one state_dict for the checkpoint."""

    nets: CycleGANNets
    opt: Optimisers
    schedulers: list[torch.optim.lr_scheduler.LambdaLR]
    pools: tuple[ImagePool, ImagePool]

    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": {name: net.state_dict() for name, net in self.nets.items()},
            "opt_g": self.opt.generators.state_dict(),
            "opt_d": self.opt.discriminators.state_dict(),
            "scaler": self.opt.scaler.state_dict(),
            "schedulers": [sched.state_dict() for sched in self.schedulers],
            "pools": [pool.state_dict() for pool in self.pools],
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        for name, net in self.nets.items():
            net.load_state_dict(state["nets"][name])
        self.opt.generators.load_state_dict(state["opt_g"])
        self.opt.discriminators.load_state_dict(state["opt_d"])
        self.opt.scaler.load_state_dict(state["scaler"])
        for sched, sched_state in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(sched_state)
        for pool, pool_state in zip(self.pools, state["pools"], strict=True):
            pool.load_state_dict(pool_state, device)
        set_rng_state(state["rng"])


def _start(s: TrainSettings, pretrained: str | Path | None, device: torch.device) -> RunState:
    nets = build_networks(s, pretrained)
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    for _, net in nets.items():
        net.to(device=device, memory_format=memory).train()
    opt = make_optimisers(nets, s, device)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda e: lr_factor(e, s.n_epochs, s.n_epochs_decay))
        for o in (opt.generators, opt.discriminators)
    ]
    return RunState(nets, opt, schedulers, (ImagePool(s.pool_size, s.seed + 1), ImagePool(s.pool_size, s.seed + 2)))


def _run_epoch(run: RunState, data: SliceSet, epoch: int, s: TrainSettings, device: torch.device) -> dict[str, float]:
    """One pass over the train split; returns the epoch's log row (mean losses, lr, seconds)."""
    tic = time.perf_counter()
    lr = run.opt.generators.param_groups[0]["lr"]
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    count = n_batches(data, s.batch_size)
    sums: dict[str, float] = {}
    batches = epoch_batches(data, epoch, s.seed, s.batch_size, s.lambda_paired > 0, s.load_factor, s.flip)
    desc = f"{s.model} epoch {epoch + 1}/{s.total_epochs}"
    for mr, ct in tqdm(batches, total=count, desc=desc, mininterval=5.0, ascii=True):
        mr, ct = (t.to(device, non_blocking=True).contiguous(memory_format=memory) for t in (mr, ct))
        for key, value in train_step(run.nets, run.opt, run.pools, mr, ct, s, device).items():
            sums[key] = sums.get(key, 0.0) + value
    for sched in run.schedulers:
        sched.step()
    return {"epoch": epoch + 1, **{f"loss_{k}": v / count for k, v in sums.items()}, "lr": lr,
            "seconds": time.perf_counter() - tic}


def _train(s: TrainSettings, device: torch.device, manifest: str | Path, pretrained: str | Path | None,
           out_dir: Path, checkpoint_path: str | Path, root: str | Path,
           on_epoch_end: Callable[[int], None] | None) -> pd.DataFrame:
    label = model_label(s.model)
    log.info("training %s on %s: %s", label, device, s)
    data = load_split(read_manifest(manifest), "train", root)
    s.check_image_size(data.size)
    fingerprint = s.fingerprint(data=_data_digest(data), pretrained=_file_digest(pretrained))
    run = _start(s, pretrained, device)
    rows: list[dict[str, float]] = []
    state = load_checkpoint(checkpoint_path, fingerprint)
    if state is not None:
        run.load_state_dict(state, device)
        rows = list(state["rows"])
        log.info("resumed from %s after epoch %d of %d", checkpoint_path, len(rows), s.total_epochs)

    for epoch in range(len(rows), s.total_epochs):
        rows.append(_run_epoch(run, data, epoch, s, device))
        log.info("epoch %d/%d: %s", epoch + 1, s.total_epochs,
                 ", ".join(f"{k}={v:.4g}" for k, v in rows[-1].items() if k != "epoch"))
        if len(rows) % s.checkpoint_every == 0 or len(rows) == s.total_epochs:
            save_checkpoint(checkpoint_path, {"fingerprint": fingerprint, "epoch": len(rows), "rows": rows,
                                              **run.state_dict()})
        if on_epoch_end is not None:
            on_epoch_end(len(rows))

    out_dir.mkdir(parents=True, exist_ok=True)
    for direction, net in (("mr2ct", run.nets.g_mr2ct), ("ct2mr", run.nets.g_ct2mr)):
        save_trained_generator(out_dir / f"G_{direction}.pth", net, model=s.model, label=label,
                               direction=direction, strategy=s.strategy, image_size=data.size)
    # Every output names where the model started: zoo category, local photos, or random init.
    table = pd.DataFrame(rows).assign(model=s.model, start=label)
    write_text_atomic(out_dir / "train_log.csv", table.to_csv(index=False))
    log.info("wrote %s/G_mr2ct.pth, G_ct2mr.pth and train_log.csv", out_dir)
    # The finished run needs no resume state; a zoo-sized checkpoint is ~0.4 GB per model.
    Path(checkpoint_path).unlink(missing_ok=True)
    return table
