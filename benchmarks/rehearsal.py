"""A rehearsal of a study's whole DAG at its real shape, with tiny iteration counts.

Why: a study config is hundreds of jobs over a 14.5 GB archive; whether every rule works at
that shape, and what each costs in memory, disk and time, should be known before the GPU
hours are spent. This builds a working directory that differs from the study only where it
must:

- the design's config (``--design``, default config/recommended.yaml, merged over config.yaml),
  with the archive replaced by the demo's synthetic heads: ``--patients`` patients at
  ``--resolution-mm`` (real scans are about 1 mm); slices, models, folds and the reader study as the
  design says; ``train.replicates`` set to ``--replicates`` (replicates are copies of the same jobs);
- for every zoo model of the design, a weight file in the official format made here (random
  weights, the published key names, the legacy instance-norm buffers of the 2017 files) where a
  user places downloaded files by hand (``resources/pretrained/<model>.pth``);
- no Inception FID (``fid.download_inception: false``): its file's sha256 is pinned, so no file
  made here can stand in for it (the FID step verifies it), and FID in the random network's
  feature space runs as always; ``benchmarks/fid.py`` times the Inception network;
- training cut to one epoch of ``--max-steps`` batches (``train.max_steps_per_epoch``);
- with ``--size``, slices of that size instead of the design's: every count of the DAG stays (jobs,
  models, patients, slices, reader-study images, report figures), and the networks' work falls
  with the pixels, so that every model's rules can run on a CPU.

It runs Snakemake (``--until`` stops after the named rules: on a machine without a GPU, every
test slice and test volume through a zoo-sized generator takes hours), then prints: the jobs of
the whole DAG per rule (a dry run), the jobs run, time and peak memory per rule (Snakemake's
benchmark files: sum and max over jobs), disk per stage, the report's size, and the training
sweep's GPU hours (benchmarks/gpu_hours.py: FLOPs per step counted here; seconds per step
measured where a GPU is present).

    python benchmarks/rehearsal.py [--out /tmp/mrct-rehearsal] [--cores 2] [--until train]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import torch
import yaml

from mrct.config import load_config, validate_config
from mrct.models.networks import ResnetGenerator, init_weights
from mrct.models.registry import downloadable_models, published_generator

ROOT = Path(__file__).resolve().parents[1]


def rehearsal_config(design: dict, args: argparse.Namespace) -> dict:
    """The design's config (``load_config`` of config.yaml and ``--design``) as the rehearsal runs it."""
    config = dict(design)
    config["dataset"] = {**config["dataset"], "source": "demo", "max_patients": None,
                         "demo": {**config["dataset"]["demo"], "n_patients": args.patients,
                                  "resolution_mm": args.resolution_mm}}
    if args.models:
        config["models"] = list(args.models)
    if args.size:
        config["slices"] = {**config["slices"], "size": args.size}
    config["fid"] = {**config["fid"], "download_inception": False}
    config["train"] = {**config["train"], "n_epochs": 1, "n_epochs_decay": 0,
                       "max_steps_per_epoch": args.max_steps, "replicates": args.replicates}
    validate_config(config)
    return config


def official_file(path: Path, model: str, seed: int) -> None:
    """A zoo generator file as the zoo publishes it: a bare state dict in the published layout; the
    CycleGAN files with the running statistics that instance norms carried in the PyTorch of 2017
    (the loader drops them), the pix2pix files with their batch-norm statistics."""
    from mrct.models.unet import UnetGenerator

    torch.manual_seed(seed)
    kind, kwargs = published_generator(model)
    net = init_weights(ResnetGenerator(**kwargs) if kind == "resnet" else UnetGenerator(**kwargs))
    state = dict(net.state_dict())
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d) and not module.track_running_stats:
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
    torch.save(state, path)


def place_weights(workdir: Path, config: dict) -> list[str]:
    """Official-format files of the design's zoo models."""
    pretrained = workdir / "resources" / "pretrained"
    pretrained.mkdir(parents=True, exist_ok=True)
    placed = []
    for index, model in enumerate(config["models"]):
        if model in downloadable_models():
            if not (pretrained / f"{model}.pth").exists():  # kept with --keep: a new file would retrain
                official_file(pretrained / f"{model}.pth", model, index)
            placed.append(model)
    return placed


def snakemake(workdir: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    if log is None:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        return done
    with log.open("w", encoding="utf-8") as handle:
        return subprocess.run(cmd, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, text=True, check=False)


def planned_jobs(workdir: Path) -> Counter:
    out = snakemake(workdir, "--dry-run", "--cores", "1", "--quiet", "rules").stdout
    counts = Counter()
    for line in out.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def benchmark_table(workdir: Path) -> pd.DataFrame:
    """Per rule: jobs, summed and longest seconds, and the largest peak RSS of Snakemake's benchmark files."""
    rows = []
    for tsv in sorted((workdir / "benchmarks" / "out").rglob("*.tsv")):
        rule = tsv.relative_to(workdir / "benchmarks" / "out").parts[0]
        frame = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "s": float(frame["s"].iloc[-1]), "max_rss_mb": float(frame["max_rss"].iloc[-1])})
    if not rows:
        return pd.DataFrame(columns=["jobs", "seconds", "longest_s", "peak_rss_mb"])
    frame = pd.DataFrame(rows)
    return frame.groupby("rule").agg(jobs=("s", "size"), seconds=("s", "sum"), longest_s=("s", "max"),
                                     peak_rss_mb=("max_rss_mb", "max")).sort_values("seconds", ascending=False)


def disk_by_stage(workdir: Path) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for top in ("results", "resources", "data", ".snakemake"):
        base = workdir / top
        if not base.exists():
            continue
        for path in base.rglob("*"):
            if path.is_file() and not path.is_symlink():
                stage = f"{top}/{path.relative_to(base).parts[0]}" if top in ("results", "resources") else top
                sizes[stage] += path.stat().st_size
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--design", default="config/recommended.yaml", help="the study's config, under the repository")
    parser.add_argument("--out", default="/tmp/mrct-rehearsal", help="working directory (emptied first)")
    parser.add_argument("--patients", type=int, default=18)
    parser.add_argument("--resolution-mm", type=int, choices=(1, 2), default=1)
    parser.add_argument("--replicates", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=1, help="batches per training epoch")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--until", nargs="*", default=[], help="rules to stop after (snakemake --until)")
    parser.add_argument("--models", nargs="*", default=[], help="instead of the design's models (fewer, on a CPU)")
    parser.add_argument("--size", type=int, default=None,
                        help="slice size in px instead of the design's: every count of the DAG stays, the networks' "
                             "work falls with the pixels (64 px: a sixteenth of 256 px), so all models' rules run on a CPU")
    parser.add_argument("--keep", action="store_true",
                        help="continue in --out as it is (e.g. after --until, with fewer --models) instead of emptying it")
    args = parser.parse_args()

    workdir = Path(args.out)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    design_config = load_config(ROOT / "config.yaml", ROOT / args.design)
    config = rehearsal_config(design_config, args)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    placed = place_weights(workdir, config)
    design_size = design_config["slices"]["size"]
    size_note = f" (the design's: {design_size} px)" if config["slices"]["size"] != design_size else ""
    design = (f"{args.design}: {len(config['models'])} models ({len(placed)} from official-format files made here), "
              f"{args.patients} demo patients at {args.resolution_mm:g} mm, {config['slices']['size']} px{size_note}, "
              f"{config['slices']['per_patient']} slices each, folds {config['split'].get('folds', 1)}, "
              f"replicates {args.replicates}, reader study {config['reader_study']['images_per_modality']} images "
              f"per modality; training 1 epoch of {args.max_steps} batch(es); no Inception FID (its file's "
              f"sha256 is pinned: no stand-in can be made here)")
    print(design, flush=True)

    whole = planned_jobs(workdir)
    print(f"\nthe whole DAG: {sum(whole.values())} jobs")
    print(", ".join(f"{rule} {n}" for rule, n in whole.most_common()))
    until = ["--until", *args.until] if args.until else []
    tic = time.perf_counter()
    done = snakemake(workdir, "--cores", str(args.cores), *until, log=workdir / "rehearsal.log")
    wall = time.perf_counter() - tic
    log_text = (workdir / "rehearsal.log").read_text(encoding="utf-8", errors="replace")
    ran = Counter(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", log_text, re.MULTILINE))
    status = "finished" if done.returncode == 0 else f"FAILED ({done.returncode}; {workdir / 'rehearsal.log'})"
    print(f"\nsnakemake --cores {args.cores} {' '.join(until)}: {status} in {wall / 60:.1f} min, "
          f"{sum(ran.values())} jobs run")
    if done.returncode:
        print(log_text[-4000:])
    left = {rule: n - ran.get(rule, 0) for rule, n in whole.items() if n > ran.get(rule, 0)}
    if left:
        print("not run here: " + ", ".join(f"{rule} {n}" for rule, n in sorted(left.items())))

    table = benchmark_table(workdir)
    print("\ntime and peak memory per rule (Snakemake benchmark files; seconds summed over jobs):")
    print(table.to_string(float_format=lambda v: f"{v:,.1f}"))
    print("\ndisk per stage:")
    for stage, size in disk_by_stage(workdir).items():
        print(f"  {stage:<34} {size / 1e6:10,.1f} MB")
    report = workdir / "results" / "report.html"
    print(f"\nreport: {report.stat().st_size / 1e6:.1f} MB" if report.exists() else "\nreport: not made in this run")

    print("\nthe design's training sweep in GPU hours (benchmarks/gpu_hours.py):", flush=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_hours.py"), "--configfile", str(ROOT / args.design),
                    "--patients", str(args.patients)], cwd=ROOT, check=True)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
