"""How long Snakemake takes to plan the full study: a dry run of 18 zoo models + scratch.

Why: the sweep is one DAG of thousands of jobs (per patient: preprocessing and slices; per
model: download, training, prediction, metrics, latent space). If planning it took minutes,
every `-n`, every rerun and every SLURM submission would wait for it. Target: <= 10 s.

The patients are tiny local folders (empty mr.nii.gz / ct.nii.gz: a dry run never reads
them) made in a temporary directory; zoo weights are absent, so their downloads are planned.

    python benchmarks/dag.py [--patients 180] [--repeats 3]
    python benchmarks/dag.py --configfile config/recommended.yaml --patients 18 --repeats 1

With --configfile the study config is merged over the repository's (its dataset replaced by the
local folders, its patient limit kept), and the summary says how many training jobs it plans
(one per model, fold, replicate and training-set size).
Prints one line per run and a summary; exits 1 if the best run exceeds --target-s.
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mrct.config import deep_merge, load_config
from mrct.models.registry import load_zoo_registry

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks.dag")


def make_patients(root: Path, n: int) -> Path:
    """n patient folders, each with an (empty) MR and CT file, as dataset.source: local reads."""
    for i in range(n):
        folder = root / f"P{i:04d}"
        folder.mkdir(parents=True)
        (folder / "mr.nii.gz").touch()
        (folder / "ct.nii.gz").touch()
    return root


def study_config(patients: Path, configfile: Path | None = None) -> dict:
    """The repository config with the study's scale: all zoo models + scratch, 256 px slices;
    or ``configfile`` merged over it, reading the local patient folders instead of its dataset."""
    if configfile is not None:
        config = load_config(ROOT / "config.yaml", configfile)
        limit = config["dataset"].get("max_patients")
        return deep_merge(config, {"dataset": {"source": "local", "path": str(patients), "max_patients": limit}})
    overrides = {
        "dataset": {"source": "local", "path": str(patients), "max_patients": None},
        "slices": {"size": 256, "per_patient": 20},
        "models": ["scratch", *sorted(load_zoo_registry())],
        "train": {"n_epochs": 100, "n_epochs_decay": 100},
    }
    return deep_merge(load_config(ROOT / "config.yaml"), overrides)


def planned(output: str, rule: str) -> int:
    """Jobs of ``rule`` in a dry run's job stats."""
    match = re.search(rf"^{rule}\s+(\d+)", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def dry_run(workdir: Path) -> tuple[float, int, str]:
    """Wall time of one dry run (parse + DAG), the number of planned jobs, and the output."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--dry-run", "--quiet", "rules", "--cores", "1"]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"dry run failed ({result.returncode}):\n{output[-4000:]}")
    total = re.search(r"^total\s+(\d+)", output, re.MULTILINE)
    return elapsed, int(total.group(1)) if total else 0, output


def startup_time() -> float:
    """Python + Snakemake import time, to tell it apart from the DAG itself."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--version"], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=180)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-s", type=float, default=10.0)
    parser.add_argument("--configfile", type=Path, default=None,
                        help="a study config (e.g. config/recommended.yaml) to plan instead")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with tempfile.TemporaryDirectory(prefix="mrct-dag-") as tmp:
        tmp = Path(tmp)
        patients = make_patients(tmp / "patients", args.patients)
        workdir = tmp / "work"
        workdir.mkdir()
        config = study_config(patients, args.configfile)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        startup = startup_time()
        times = []
        for i in range(args.repeats):
            elapsed, n_jobs, output = dry_run(workdir)
            times.append(elapsed)
            log.info("run %d: %.2f s for %d planned jobs, of which %d training jobs", i + 1, elapsed, n_jobs,
                     planned(output, "train"))
    best = min(times)
    log.info(
        "full study dry run: %d patients, %d models (%s): best %.2f s, median %.2f s "
        "(of which %.2f s Python/Snakemake start-up); target <= %.1f s: %s",
        args.patients, len(config["models"]), args.configfile or "18 zoo + scratch", best,
        sorted(times)[len(times) // 2], startup, args.target_s,
        "met" if best <= args.target_s else "NOT met",
    )
    return 0 if best <= args.target_s else 1


if __name__ == "__main__":
    sys.exit(main())
