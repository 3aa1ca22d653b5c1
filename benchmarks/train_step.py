"""Speed of one full CycleGAN training step, against a bare PyTorch step of the same math, and
the checkpoint bytes and time of a study-scale run.

For the zoo architecture at 256x256, batch 2 (the study) and the demo network at the demo size,
on the CPU, and on CUDA (the config's defaults: bf16 where supported, channels_last, TF32) when a
GPU is present, it prints:

- iterations/s, images/s and peak memory of the project's step (``mrct.training.step.train_step``
  plus the loop's on-device loss sum);
- the ratio of the project's speed to a bare step written here in plain PyTorch: the same
  networks, losses, image pools and Adam updates, with none of the project's bookkeeping (loss
  dicts, autocast and scaler wrappers, requires_grad bookkeeping, the loss sum, and on the CPU
  the deterministic kernels). The two run interleaved in one process, ``--rounds`` rounds of one
  block of each, so machine load hits both alike; ratio = median over rounds of bare seconds /
  project seconds (1.0: no overhead; above 1: the project is faster);
- the size of a zoo-sized checkpoint (written for real, with full pools and Adam moments), the
  projected time of a study-scale run (200 epochs x 260 slices / batch 2 = 26,000 steps) and
  the checkpoint bytes that run writes at ``train.checkpoint_minutes`` of the config (one save
  per interval plus the one at the end). Without a GPU the GPU time is projected from the step's
  FLOP count (counted here) at an assumed sustained rate, ``--gpu-tflops``, and says so.

Each case runs in its own process so that its peak memory is its own.

    python benchmarks/train_step.py [--steps 2] [--rounds 3] [--threads 1] [--no-cpu-zoo] [--config config.yaml]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY_STEPS = 200 * 260 // 2


def _settings(case: dict):
    from mrct.training.settings import TrainSettings

    return TrainSettings(model="scratch", seed=0, ngf=case["ngf"], n_blocks=case["n_blocks"], ndf=case["ndf"],
                         batch_size=case["batch"], device=case["device"])


def bare_step(nets, opt_g, opt_d, pools, x, y, lambda_cycle, lambda_identity, dtype):
    """The CycleGAN step of Zhu et al. in plain PyTorch (G = mr2ct, F = ct2mr, LSGAN, L1)."""
    import contextlib

    import torch
    import torch.nn.functional as F  # noqa: N812

    g, f, d_y, d_x = nets
    amp = torch.autocast(x.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    for p in itertools.chain(d_y.parameters(), d_x.parameters()):
        p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with amp:
        fake_y, fake_x = g(x), f(y)
        p_y, p_x = d_y(fake_y).float(), d_x(fake_x).float()
        loss = (F.mse_loss(p_y, torch.ones_like(p_y)) + F.mse_loss(p_x, torch.ones_like(p_x))
                + lambda_cycle * (F.l1_loss(f(fake_y), x) + F.l1_loss(g(fake_x), y))
                + lambda_identity * lambda_cycle * (F.l1_loss(g(y), y) + F.l1_loss(f(x), x)))
    loss.backward()
    opt_g.step()
    for p in itertools.chain(d_y.parameters(), d_x.parameters()):
        p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with amp:
        loss_d = 0.0
        for disc, real, fake in ((d_y, y, pools[0].query(fake_y)), (d_x, x, pools[1].query(fake_x))):
            p_real, p_fake = disc(real).float(), disc(fake.detach()).float()
            loss_d = loss_d + 0.5 * (F.mse_loss(p_real, torch.ones_like(p_real))
                                     + F.mse_loss(p_fake, torch.zeros_like(p_fake)))
    loss_d.backward()
    opt_d.step()


def run_case(case: dict) -> dict:
    """Interleave project and bare steps; return seconds per step of each, peak memory, FLOPs."""
    import torch

    from mrct.io.device import resolve_device

    if case["threads"]:
        torch.set_num_threads(case["threads"])
    from mrct.training.hardware import autocast_dtype, backend_flags, memory_format
    from mrct.training.loop import Progress, _start
    from mrct.training.step import train_step

    device = resolve_device(case["device"])
    s = _settings(case)
    torch.manual_seed(0)
    memory = memory_format(s, device)
    shape = (case["batch"], 3, case["size"], case["size"])
    x = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=memory)
    y = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=memory)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with backend_flags(s, device):
        # The project's own flags (deterministic kernels on the CPU) are part of its cost; the bare
        # step runs with PyTorch's defaults. Each block sets its own.
        deterministic = torch.are_deterministic_algorithms_enabled()
        project = _start(s, None, device)
        progress = Progress(rows=[])

        def project_step() -> None:
            progress.add(train_step(project.nets, project.opt, project.pools, x, y, s, device))

        for _ in range(case["warmup"]):
            project_step()
        sync()
        if device.type == "cuda":
            peak, peak_kind = torch.cuda.max_memory_allocated() / 2**20, "GPU MiB (max allocated)"
        else:
            peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "RSS MiB (process peak)"

        bare = _start(s, None, device)  # the same initial weights: same seed
        nets = (bare.nets.g_mr2ct, bare.nets.g_ct2mr, bare.nets.d_ct, bare.nets.d_mr)
        dtype = autocast_dtype(s.autocast, device)

        def plain_step() -> None:
            bare_step(nets, bare.opt.generators, bare.opt.discriminators, bare.pools, x, y, s.lambda_cycle,
                      s.lambda_identity, dtype)

        torch.use_deterministic_algorithms(False)
        for _ in range(case["warmup"]):
            plain_step()
        times: dict[str, list[float]] = {"project": [], "bare": []}
        blocks = [("project", project_step, deterministic), ("bare", plain_step, False)]
        for i in range(case["rounds"]):
            for name, step, flag in blocks if i % 2 == 0 else blocks[::-1]:  # alternate who goes first
                torch.use_deterministic_algorithms(flag)
                sync()
                tic = time.perf_counter()
                for _ in range(case["steps"]):
                    step()
                sync()
                times[name].append(time.perf_counter() - tic)
        progress.loss_sums.tolist()
    n = case["rounds"] * case["steps"]
    # Per round, the two blocks ran back to back under the same machine load: the median of the
    # per-round ratios is robust to load that changes between rounds (shared machines).
    ratio = statistics.median(b / p for p, b in zip(times["project"], times["bare"], strict=True))
    return {**case, "autocast": str(dtype).removeprefix("torch.") if dtype else "fp32",
            "channels_last": memory == torch.channels_last, "s_project": sum(times["project"]) / n,
            "s_bare": sum(times["bare"]) / n, "ratio": ratio, "peak": peak, "peak_kind": peak_kind,
            "threads": torch.get_num_threads()}


def study_case(case: dict) -> dict:
    """FLOPs of one zoo step (counted on the meta device: shapes only, no arithmetic), and bytes
    and save seconds of a zoo-sized checkpoint (full pools, Adam moments, all four networks)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mrct.training.step import train_step

    from mrct.training.checkpoint import save_checkpoint
    from mrct.training.loop import Progress, _start

    s = _settings(case)
    meta = torch.device("meta")
    run = _start(s, None, meta)
    x = torch.empty(case["batch"], 3, case["size"], case["size"], device=meta)
    with FlopCounterMode(display=False) as counter:
        train_step(run.nets, run.opt, run.pools, x, x, s, meta)
    run = _start(s, None, torch.device("cpu"))
    for opt in (run.opt.generators, run.opt.discriminators):  # one zero-gradient step creates the moments
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        opt.step()
    for pool in run.pools:
        pool.query(torch.rand(s.pool_size, 3, case["size"], case["size"]) * 2 - 1)
    progress = Progress(rows=[{"epoch": 1.0}], loss_names=("a",) * 8, loss_sums=torch.zeros(8, dtype=torch.float64))
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        size = save_checkpoint(Path(tmp) / "ckpt.pt", {"fingerprint": "x", "progress": progress.state_dict(),
                                                       **run.state_dict()})
        seconds = time.perf_counter() - tic
    return {"bytes": size, "save_seconds": seconds, "flops": counter.get_total_flops()}


def cases(args: argparse.Namespace, config: dict) -> list[dict]:
    import torch

    net, size = config["network"], config["slices"]["size"]
    common = {"steps": args.steps, "rounds": args.rounds, "warmup": args.warmup, "threads": args.threads}
    zoo = {"name": "zoo 256x256 b2", "ngf": 64, "n_blocks": 9, "ndf": 64, "size": 256, "batch": 2}
    demo = {"name": f"demo {size}x{size} b{config['train']['batch_size']}", "ngf": net["ngf"],
            "n_blocks": net["n_blocks"], "ndf": net["ndf"], "size": size, "batch": config["train"]["batch_size"]}
    out = [{**zoo, **common, "device": "cpu"}] if args.cpu_zoo else []
    out.append({**demo, **common, "device": "cpu", "steps": args.steps * 5})
    if torch.cuda.is_available():
        out += [{**shape, **common, "device": "cuda", "steps": args.steps * 5, "warmup": args.warmup + 5}
                for shape in (zoo, demo)]
    return out, {**zoo, **common, "device": "cpu"}


def _run(kind: str, case: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, f"--{kind}", json.dumps(case)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} {case.get('name')}: failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1, help="steps per timed block (zoo on CPU; 5 times this for the rest)")
    parser.add_argument("--rounds", type=int, default=11, help="rounds of one project and one bare block")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--gpu-tflops", type=float, default=50.0,
                        help="assumed sustained TFLOP/s for the GPU projection when no GPU is present")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per case (0: torch's default); 1 on a shared or loaded machine")
    parser.add_argument("--cpu-zoo", action=argparse.BooleanOptionalAction, default=True,
                        help="time the zoo network on the CPU too (tens of seconds per step)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, as JSON
    parser.add_argument("--study", help=argparse.SUPPRESS)  # internal: FLOPs and checkpoint, as JSON
    args = parser.parse_args()
    if args.case or args.study:
        print(json.dumps(run_case(json.loads(args.case)) if args.case else study_case(json.loads(args.study))))
        return 0
    import yaml

    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    results = []
    timed, study = cases(args, config)
    for case in timed:
        r = _run("case", case)
        results.append(r)
        layout = " channels_last" if r["channels_last"] else ""
        print(f"{r['name']:<16} {r['device']:<4} {r['autocast']}{layout:<14} {1 / r['s_project']:8.4g} it/s "
              f"({r['s_project']:8.3g} s/step) {r['batch'] / r['s_project']:8.4g} images/s  peak {r['peak']:7.0f} "
              f"{r['peak_kind']}  ({r['threads']} threads) | bare PyTorch {r['s_bare']:8.3g} s/step, "
              f"project/bare speed ratio {r['ratio']:.3f} (median of {r['rounds']} rounds)", flush=True)

    zoo = [r for r in results if r["name"].startswith("zoo")]
    ckpt = _run("study", study)
    minutes = float(config["train"]["checkpoint_minutes"])
    print(f"zoo checkpoint: {ckpt['bytes'] / 1e9:.3f} GB, saved in {ckpt['save_seconds']:.1f} s (local disk); "
          f"interval train.checkpoint_minutes = {minutes:g}")
    flops = ckpt["flops"]
    print(f"zoo step: {flops / 1e12:.2f} TFLOP (both generators and discriminators, forward and backward)")
    projections = [(f"{r['device']} {r['autocast']}{' channels_last' if r['channels_last'] else ''} (measured)",
                    STUDY_STEPS * r["s_project"] / 60) for r in zoo]
    if not any(r["device"] == "cuda" for r in zoo):
        projections.append((f"a GPU, NOT MEASURED (no GPU here): {flops / 1e12:.2f} TFLOP/step at an assumed "
                            f"{args.gpu_tflops:g} TFLOP/s sustained", STUDY_STEPS * flops / (args.gpu_tflops * 1e12) / 60))
    for what, run_minutes in projections:
        saves = int(run_minutes // minutes) + 1  # one per full interval, one at the end
        print(f"study-scale run ({STUDY_STEPS} steps) on {what}: {run_minutes:,.1f} min ({run_minutes / 60:,.1f} h); "
              f"checkpoints: {saves} x {ckpt['bytes'] / 1e9:.3f} GB = {saves * ckpt['bytes'] / 1e9:,.2f} GB written")
    limit = (int(5e9 // ckpt["bytes"]) - 1) * minutes
    print(f"5 GB of checkpoints per model holds for runs up to {limit:.0f} min at this interval")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
