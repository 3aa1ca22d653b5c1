"""Run the repository's workflow on a tiny config in a temporary working directory.

Shared by tests/test_slurm.py and tests/test_rerun.py. The workflow is run as a user would:
``snakemake -s <repo>/Snakefile -d <workdir>``. The Snakefile's ``configfile: "config.yaml"``
resolves against the working directory, so each workdir gets a full config.yaml (the
repository's default merged with the tiny overrides, validated like the workflow does).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mrct.config import deep_merge, load_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "Snakefile"

# Small enough to run end to end in a minute on 2 CPU cores; every value is a config key.
TINY: dict[str, Any] = {
    "seed": 7,
    "dataset": {"source": "demo", "demo": {"n_patients": 3, "resolution_mm": 2}},
    "preprocess": {
        "n4": {"shrink_factor": 4, "iterations": [5]},
        "registration": {"iterations": 10, "shrink_factors": [4, 2],
                         "smoothing_sigmas_mm": [2.0, 0.0]},
        # 10 iterations may leave the pairs a few mm apart, which registration QA rightly flags;
        # they are kept so the tiny run still has both splits.
        "registration_qa": {"keep_flagged": True},
    },
    "slices": {"size": 32, "per_patient": 2},
    "models": ["scratch"],
    "network": {"ngf": 4, "ndf": 4, "n_blocks": 1},
    "pretrain_photos": {"iterations": 2, "crop_size": 32, "batch_size": 2},
    "train": {"n_epochs": 1, "n_epochs_decay": 0, "batch_size": 2, "checkpoint_minutes": 10},
    "latent": {"max_slices": 4, "tsne_perplexity": 2.0, "umap_n_neighbors": 2, "knn_k": 1},
    # one slice per direction: the tiny test split holds only 2. One test patient: no selection
    # patients to spare, so the shown model is named (the only one).
    "reader_study": {"images_per_modality": 2, "model": "scratch"},
}


# The suite's one shared end-to-end run (tests/conftest.py: ``e2e_run``), reused by every test that
# needs a finished pipeline: five patients so that three are tested (a significance test over
# patients, a patient-grouped k-NN and an STD need more than one), a pretrained and a paired model beside scratch.
E2E: dict[str, Any] = {
    # demo003 (a training patient with seed 7) gets another head's MR: registration QA must flag it
    # and leave it out end to end. The other pairs are registered as the repository's config does
    # (TINY's 10 iterations stop short, and QA rightly flags such pairs), so they pass.
    "dataset": {"demo": {"n_patients": 5, "mixed_up": ["demo003"]}},
    "preprocess": {"registration": load_config(ROOT / "config.yaml")["preprocess"]["registration"],
                   "registration_qa": {"keep_flagged": False}},
    "split": {"train_fraction": 0.5},
    # the CycleGAN baseline, a pretrained CycleGAN start and the paired (pix2pix) baseline
    "models": ["scratch", "skimage_photos", "pix2pix_scratch"],
    "slices": {"size": 48},
    # three tested patients: the model shown is chosen on one of them, the readers see the other two
    "reader_study": {"images_per_modality": 4, "model": None, "selection_patients": 1},
}


def e2e_config(**overrides: Any) -> dict[str, Any]:
    """The shared end-to-end run's config: TINY, then E2E, then ``overrides``."""
    return tiny_config(**deep_merge(E2E, overrides))


def copy_workdir(source: Path, target: Path) -> Path:
    """A private copy of a finished workdir: file times and .snakemake metadata kept, so that
    Snakemake sees the copy exactly as it saw the original (nothing to do until something changes)."""
    shutil.copytree(source, target, symlinks=True, copy_function=shutil.copy2)
    return target


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """The repository config with TINY and ``overrides`` merged over it, validated."""
    config = deep_merge(load_config(ROOT / "config.yaml"), TINY)
    config = deep_merge(config, overrides)
    validate_config(config)
    return config


def write_workdir(workdir: Path, config: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """``python -m snakemake -s <repo Snakefile> -d <workdir> ...``, to run from the repository root."""
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), *args]


def snakemake(workdir: Path, *args: str, check: bool = True,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m snakemake -s <repo Snakefile> -d <workdir> ...`` from the repository root."""
    cmd = snakemake_command(workdir, *args)
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result


def available_rules(workdir: Path) -> set[str]:
    """The workflow's rule names; a rule file that the Snakefile includes must exist.

    Read from the rule files (``rule x:`` / ``checkpoint x:`` lines) rather than with
    ``snakemake --list-rules``: that would cost a full parse (seconds) per test module, and a
    workflow that does not parse fails loudly in the next Snakemake call anyway.
    """
    included = re.findall(r'^include:\s*"([^"]+)"', SNAKEFILE.read_text(encoding="utf-8"), re.MULTILINE)
    files = [SNAKEFILE, *(SNAKEFILE.parent / name for name in included)]
    missing = [str(f) for f in files if not f.exists()]
    assert not missing, f"the Snakefile includes rule files that do not exist: {missing}"
    pattern = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
    return {name for f in files for name in pattern.findall(f.read_text(encoding="utf-8"))}


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: dict[str, str]
    outputs: tuple[str, ...]


_JOB_BLOCK = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n?)*)", re.MULTILINE)


def _field(block: str, name: str) -> str:
    match = re.search(rf"^    {name}: (.*)$", block, re.MULTILINE)
    return match.group(1) if match else ""


def dry_run(workdir: Path, *args: str) -> list[PlannedJob]:
    """The jobs a dry run plans, parsed from Snakemake's job blocks ("rule x:" + fields)."""
    result = snakemake(workdir, "--dry-run", "--cores", "1", *args)
    jobs = []
    for rule, block in _JOB_BLOCK.findall(result.stdout):
        wildcards = dict(
            item.split("=", 1) for item in _field(block, "wildcards").split(", ") if "=" in item
        )
        outputs = tuple(o for o in _field(block, "output").split(", ") if o)
        jobs.append(PlannedJob(rule, wildcards, outputs))
    if not jobs and "Nothing to be done" not in result.stdout + result.stderr:
        raise AssertionError(f"dry run output not understood:\n{result.stdout[-3000:]}")
    return jobs


def rule_counts(jobs: list[PlannedJob]) -> Counter:
    return Counter(job.rule for job in jobs)
