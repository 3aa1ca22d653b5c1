"""The GPU hours a config's training sweep needs: measured seconds per step times the steps of every job.

Why: a study config plans hundreds of training jobs (models x folds x replicates x training-set
sizes); whether that is a weekend on one GPU or a month must be known before it is submitted.

For every model of the config (merged over config.yaml, as ``--configfile`` does for Snakemake)
the settings rule train uses (``settings_from_config``). Models that share a network shape
(family, widths, depth, batch) are measured once:

- FLOPs of one training step (both generators and discriminators, forward and backward), counted
  on the meta device (shapes only, no arithmetic);
- seconds per step of the project's own step (the training loop's start and the family's step:
  the config's autocast, channels_last and TF32), on CUDA when a GPU is present: the median of
  ``--blocks`` timed blocks after a warm-up. Without a GPU nothing is measured on one: the hours
  are projected from the FLOPs at an assumed ``--gpu-tflops``, and the output says so.

Steps per job are the config's epochs x batches per epoch, the batches from the training
slices of a fold (``--patients`` patients after registration QA, dealt to folds as
``mrct.slices.split.patient_folds`` deals them, ``slices.per_patient`` each).

    python benchmarks/gpu_hours.py --configfile config/recommended.yaml --patients 18
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mrct.config import load_config
from mrct.slices.split import patient_folds
from mrct.slices.sweep import Sweep, training_patients
from mrct.training.hardware import backend_flags, memory_format
from mrct.training.loop import FAMILY_TRAINING, _start
from mrct.training.settings import TrainSettings, settings_from_config

ROOT = Path(__file__).resolve().parents[1]


def shape_of(s: TrainSettings) -> tuple:
    """What a step's cost depends on: the networks, the batch, and which layers train."""
    return (s.family, s.ngf, s.n_blocks, s.num_downs, s.ndf, s.d_layers, s.batch_size, s.strategy, s.adapter_units)


def describe(s: TrainSettings) -> str:
    body = f"U-Net {s.num_downs} downs" if s.family == "pix2pix" else f"ResNet {s.n_blocks} blocks"
    return f"{s.family} {body}, ngf {s.ngf}, ndf {s.ndf}, batch {s.batch_size}, strategy {s.strategy}"


def _one_step(s: TrainSettings, device: torch.device, size: int):
    """The project's step on ``device``, ready to call, with fixed inputs of the slice size."""
    run = _start(s, None, device)
    _, step = FAMILY_TRAINING[s.family]
    memory = memory_format(s, device)
    shape = (s.batch_size, 3, size, size)
    x = torch.empty(shape, device=device).uniform_(-1, 1).contiguous(memory_format=memory)
    y = torch.empty(shape, device=device).uniform_(-1, 1).contiguous(memory_format=memory)
    return lambda: step(run.nets, run.opt, run.pools, x, y, s, device)


def step_flops(s: TrainSettings, size: int) -> int:
    with FlopCounterMode(display=False) as counter:
        _one_step(s, torch.device("meta"), size)()
    return counter.get_total_flops()


def step_seconds(s: TrainSettings, size: int, device: torch.device, warmup: int, blocks: int,
                 steps: int) -> tuple[float, float]:
    """Median seconds per step over ``blocks`` blocks of ``steps`` steps, and the peak GPU MiB."""
    with backend_flags(s, device):
        step = _one_step(s, device, size)
        for _ in range(warmup):
            step()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(blocks):
            tic = time.perf_counter()
            for _ in range(steps):
                step()
            torch.cuda.synchronize(device)
            times.append((time.perf_counter() - tic) / steps)
    return statistics.median(times), torch.cuda.max_memory_allocated(device) / 2**20


def steps_per_job(config: dict, sweep: Sweep, n_patients: int, batch: int) -> list[int]:
    """Steps of every run of one model: epochs x ceil(training slices / batch)."""
    ids = [f"P{i:03d}" for i in range(n_patients)]
    split = config["split"]
    folds = patient_folds(ids, sweep.folds, split.get("train_fraction", 0.7), config["seed"])
    per_patient = config["slices"]["per_patient"]
    epochs = config["train"]["n_epochs"] + config["train"]["n_epochs_decay"]
    return [epochs * math.ceil(len(training_patients(folds, run.fold, run.n_train, config["seed"])) * per_patient
                               / batch) for run in sweep.runs()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", action="append", default=[],
                        help="merged over config.yaml, as Snakemake's --configfile (repeatable)")
    parser.add_argument("--patients", type=int, help="patients left after registration QA "
                        "(default: dataset.max_patients, else the demo's n_patients)")
    parser.add_argument("--gpu-tflops", type=float, default=50.0,
                        help="assumed sustained TFLOP/s when no GPU is present (then nothing is measured)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    args = parser.parse_args()

    config = load_config(ROOT / "config.yaml", *args.configfile)
    dataset = config["dataset"]
    n_patients = args.patients or dataset.get("max_patients") or dataset["demo"]["n_patients"]
    size = config["slices"]["size"]
    sweep = Sweep.from_config(config)
    gpu = torch.device("cuda", 0) if torch.cuda.is_available() else None
    where = (f"measured on {torch.cuda.get_device_name(gpu)}" if gpu else
             f"NOT MEASURED (no GPU here): FLOPs at an assumed {args.gpu_tflops:g} TFLOP/s sustained")
    print(f"{len(config['models'])} models x {len(sweep.runs())} runs each (folds {sweep.folds}, replicates "
          f"{sweep.replicates}, train sizes {list(sweep.train_sizes) or 'all'}); {n_patients} patients, "
          f"{config['slices']['per_patient']} slices each, {size} px; seconds per step {where}")

    shapes: dict[tuple, list[str]] = defaultdict(list)
    settings = {}
    for model in config["models"]:
        s = settings_from_config(config, model)
        s = dataclasses.replace(s, device="cuda" if gpu else "cpu")
        shapes[shape_of(s)].append(model)
        settings[shape_of(s)] = s
    total_hours = 0.0
    for shape, models in shapes.items():
        s = settings[shape]
        flops = step_flops(s, size)
        if gpu:
            seconds, peak = step_seconds(s, size, gpu, args.warmup, args.blocks, args.steps)
            rate = f"{flops / seconds / 1e12:6.1f} TFLOP/s sustained, peak {peak:,.0f} GPU MiB"
        else:
            seconds, rate = flops / (args.gpu_tflops * 1e12), "assumed rate"
        steps = steps_per_job(config, sweep, n_patients, s.batch_size)
        hours = len(models) * sum(steps) * seconds / 3600
        total_hours += hours
        print(f"{describe(s)}: {flops / 1e12:.3f} TFLOP/step, {seconds * 1e3:8.2f} ms/step ({rate}); "
              f"{len(models)} models x {len(steps)} jobs of {min(steps):,}-{max(steps):,} steps = {hours:,.1f} GPU h "
              f"[{', '.join(models)}]")
    jobs = len(config["models"]) * len(sweep.runs())
    print(f"training total: {jobs} jobs, {total_hours:,.1f} GPU hours ({total_hours / 24:,.1f} GPU days); "
          f"{where}. Prediction, latent features and FID add minutes per job, not hours.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
