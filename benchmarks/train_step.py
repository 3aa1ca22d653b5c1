"""Speed and memory of one full CycleGAN training step (both generators, both discriminators).

Prints iterations/s, images/s (image pairs per second: batch size x iterations/s) and peak
memory for the zoo architecture at 256x256, batch 2 (the study) and the demo network at the
demo size, on CPU; and on CUDA in fp32 and bf16 autocast when a GPU is present. Each case runs
in its own process so that its peak memory is its own. The last lines project the time of one
study-scale run: 200 epochs over about 260 training slices at batch 2 (26,000 steps).

    python benchmarks/train_step.py [--steps 5] [--warmup 2] [--config config.yaml]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

STUDY_STEPS = 200 * 260 // 2


def run_case(case: dict) -> dict:
    """Time ``steps`` training steps after ``warmup`` ones; return the figures as a dict."""
    import torch

    from mrct.training.build import build_networks
    from mrct.training.loop import make_optimisers
    from mrct.training.pool import ImagePool
    from mrct.training.settings import TrainSettings
    from mrct.training.step import train_step

    device = torch.device(case["device"])
    torch.manual_seed(0)
    s = TrainSettings(model="scratch", seed=0, ngf=case["ngf"], n_blocks=case["n_blocks"], ndf=case["ndf"],
                      batch_size=case["batch"], autocast=case["autocast"], channels_last=case["channels_last"],
                      device=case["device"])
    nets = build_networks(s, None)
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    for _, net in nets.items():
        net.to(device=device, memory_format=memory).train()
    opt = make_optimisers(nets, s, device)
    pools = (ImagePool(50, 1), ImagePool(50, 2))
    shape = (case["batch"], 3, case["size"], case["size"])
    mr = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=memory)
    ct = (torch.rand(shape, device=device) * 2 - 1).contiguous(memory_format=memory)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(case["warmup"]):
        train_step(nets, opt, pools, mr, ct, s, device)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    for _ in range(case["steps"]):
        train_step(nets, opt, pools, mr, ct, s, device)
    sync()
    seconds = (time.perf_counter() - tic) / case["steps"]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "GPU MiB (max allocated)"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "RSS MiB (process peak)"
    return {**case, "it_per_s": 1 / seconds, "images_per_s": case["batch"] / seconds, "peak": peak,
            "peak_kind": peak_kind, "threads": torch.get_num_threads()}


def cases(args: argparse.Namespace) -> list[dict]:
    import torch
    import yaml

    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    net, size = config["network"], config["slices"]["size"]
    common = {"steps": args.steps, "warmup": args.warmup, "channels_last": False}
    zoo = {"name": "zoo 256x256 b2", "ngf": 64, "n_blocks": 9, "ndf": 64, "size": 256, "batch": 2}
    demo = {"name": f"demo {size}x{size} b{config['train']['batch_size']}", "ngf": net["ngf"],
            "n_blocks": net["n_blocks"], "ndf": net["ndf"], "size": size, "batch": config["train"]["batch_size"]}
    out = [{**zoo, **common, "device": "cpu", "autocast": "none"}, {**demo, **common, "device": "cpu", "autocast": "none"}]
    if torch.cuda.is_available():
        for shape in (zoo, demo):
            for autocast in ("none", "bf16"):
                gpu = {**shape, **common, "device": "cuda", "autocast": autocast, "steps": args.steps * 10}
                out.append(gpu)
                if autocast == "bf16":
                    out.append({**gpu, "channels_last": True})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, as JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    results = []
    for case in cases(args):
        done = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                              text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        precision = "fp32" if result["autocast"] == "none" else result["autocast"]
        layout = " channels_last" if result["channels_last"] else ""
        print(f"{result['name']:<18} {result['device']:<4} {precision}{layout:<14} "
              f"{result['it_per_s']:9.4g} it/s ({1 / result['it_per_s']:8.3g} s/step)  "
              f"{result['images_per_s']:9.4g} images/s  "
              f"peak {result['peak']:8.0f} {result['peak_kind']}  ({result['threads']} threads)", flush=True)
    for result in results:
        if result["name"].startswith("zoo"):
            minutes = STUDY_STEPS / result["it_per_s"] / 60
            precision = "fp32" if result["autocast"] == "none" else result["autocast"]
            layout = " channels_last" if result["channels_last"] else ""
            print(f"projected study-scale run (200 epochs x 260 slices / batch 2 = {STUDY_STEPS} steps) on "
                  f"{result['device']} {precision}{layout}: {minutes:,.1f} min ({minutes / 60:,.1f} h)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
