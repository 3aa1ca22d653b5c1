"""Rerunning single rules: dry runs on a workdir whose pipeline state already exists.

The state is faked with ``snakemake --touch`` (tests/slurm/tiny_workflow.py explains how
it records the same metadata a real run does), so these tests take seconds. Each test asks
a dry run what would run after one kind of change and checks that only what depends on
the change is planned: forcing a rule (``-R train``), asking for one file, adding a model,
changing a training parameter (rerun trigger ``params``).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "slurm" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tw = _load("tiny_workflow")

# Rules upstream of training: none of them may rerun when only training changes.
PREPROCESSING = {
    "make_demo_patient", "download_dataset", "verify_dataset", "unpack_dataset",
    "bias_correct", "register", "extract_slices", "split",
}
UPSTREAM_OF_TRAIN = PREPROCESSING | {"download_pretrained", "pretrain_photos"}
DOWNSTREAM_OF_TRAIN = {"predict", "evaluate", "tables", "latent", "latent_summary", "latent_joint",
                       "fid", "figures", "report", "translate_volume", "evaluate_volumes", "tables_volumes",
                       "reader_study", "reader_study_analysis", "training_table", "select_model"}
MODEL_FILE = "results/models/scratch/G_mr2ct.pth"


pytestmark = pytest.mark.slow  # about a dozen Snakemake calls of a few seconds each


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory) -> set[str]:
    """The workflow's rule names (one ``--list-rules`` for the whole module)."""
    workdir = tw.write_workdir(tmp_path_factory.mktemp("rules"), tw.tiny_config())
    available = tw.available_rules(workdir)
    # A renamed or deleted rule fails here instead of silently weakening the tests below.
    missing = sorted((UPSTREAM_OF_TRAIN | DOWNSTREAM_OF_TRAIN | {"train"}) - available)
    assert not missing, f"rules named by these tests are missing from the workflow: {missing}"
    return available


@pytest.fixture(scope="module")
def state(tmp_path_factory, workflow_rules: set[str]) -> Path:
    """A workdir where the whole tiny pipeline has (seemingly) run."""
    workdir = tw.write_workdir(tmp_path_factory.mktemp("state"), tw.tiny_config())
    tw.fake_pipeline_state(workdir)
    assert tw.dry_run(workdir) == [], "the faked state is not up to date"
    return workdir


@pytest.fixture
def copy_of_state(state: Path, tmp_path: Path) -> Path:
    """A private copy (times and .snakemake metadata kept) for tests that change the config."""
    target = tmp_path / "work"
    shutil.copytree(state, target, symlinks=True)
    return target


def _rewrite_config(workdir: Path, **overrides) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text(encoding="utf-8"))
    tw.write_workdir(workdir, tw.tiny_config(**tw.deep_merge(config, overrides)))


def _assert_train_and_downstream(rules, workflow_rules: set[str]) -> None:
    assert rules["train"] == 1, rules
    assert not set(rules) & UPSTREAM_OF_TRAIN, rules
    assert set(rules) - {"train", "all"} <= DOWNSTREAM_OF_TRAIN, rules
    # What consumes the model must follow it (as far as those rules exist yet).
    consumers = {"predict", "evaluate", "tables", "report"} & workflow_rules
    assert consumers <= set(rules), rules


def test_forcing_train_reruns_train_and_downstream_only(state: Path, workflow_rules) -> None:
    jobs = tw.dry_run(state, "--forcerun", "train")
    _assert_train_and_downstream(tw.rule_counts(jobs), workflow_rules)


def test_a_target_file_builds_only_its_dependencies(tmp_path: Path, workflow_rules) -> None:
    workdir = tw.write_workdir(tmp_path / "fresh", tw.tiny_config())
    rules = tw.rule_counts(tw.dry_run(workdir, MODEL_FILE))
    assert rules["train"] == 1 and rules["split"] == 1
    assert rules["make_demo_patient"] == tw.TINY["dataset"]["demo"]["n_patients"]
    assert not set(rules) & (DOWNSTREAM_OF_TRAIN | {"all"}), rules


def test_forcing_a_target_file_reruns_only_its_job(state: Path) -> None:
    jobs = tw.dry_run(state, "--force", MODEL_FILE)
    assert [job.rule for job in jobs] == ["train"]
    # the single run of a single-run study: an empty run tag, the short paths
    assert jobs[0].wildcards.get("model") == "scratch" and not jobs[0].wildcards.get("run")


def test_adding_a_model_runs_only_that_models_jobs(copy_of_state: Path) -> None:
    _rewrite_config(copy_of_state, models=["scratch", "skimage_photos"])
    jobs = tw.dry_run(copy_of_state)
    rules = tw.rule_counts(jobs)
    assert rules["train"] == 1
    assert not set(rules) & PREPROCESSING, rules
    per_model = [job for job in jobs if "model" in job.wildcards]
    assert per_model and {job.wildcards["model"] for job in per_model} == {"skimage_photos"}


def test_a_changed_training_parameter_reruns_training_not_preprocessing(
    copy_of_state: Path, workflow_rules: set[str]
) -> None:
    config = yaml.safe_load((copy_of_state / "config.yaml").read_text(encoding="utf-8"))
    _rewrite_config(copy_of_state, train={"lr": config["train"]["lr"] / 2})
    _assert_train_and_downstream(tw.rule_counts(tw.dry_run(copy_of_state)), workflow_rules)
