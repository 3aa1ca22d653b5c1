"""Rerunning single rules: dry runs on the suite's finished end-to-end run (``e2e_run``).

Each test asks a dry run what would run after one kind of change and checks that only what
depends on the change is planned: forcing a rule (``-R train``), asking for one file, adding a
model, changing a training parameter (rerun trigger ``params``). Tests that change the config
work on a copy of the run (``e2e_copy``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py
import yaml

ROOT = Path(__file__).resolve().parents[1]



# Rules upstream of training: none of them may rerun when only training changes.
PREPROCESSING = {
    "make_demo_patient", "download_dataset", "verify_dataset", "unpack_dataset",
    "bias_correct", "register", "extract_slices", "split",
}
UPSTREAM_OF_TRAIN = PREPROCESSING | {"download_pretrained", "pretrain_photos"}
DOWNSTREAM_OF_TRAIN = {"predict", "evaluate", "tables", "latent", "latent_summary", "latent_joint",
                       "fid", "figures", "report", "translate_volume", "evaluate_volumes", "tables_volumes",
                       "reader_study", "reader_study_analysis", "training_table", "select_model", "forest_plots"}
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
def state(e2e_run: Path, workflow_rules: set[str]) -> Path:
    """The shared finished run: up to date, so a dry run plans nothing."""
    assert tw.dry_run(e2e_run) == [], "the finished run is not up to date"
    return e2e_run


@pytest.fixture
def copy_of_state(e2e_copy: Path) -> Path:
    """A private copy (times and .snakemake metadata kept) for tests that change the config."""
    return e2e_copy


def _rewrite_config(workdir: Path, **overrides) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text(encoding="utf-8"))
    tw.write_workdir(workdir, tw.tiny_config(**tw.deep_merge(config, overrides)))


def _assert_train_and_downstream(rules, workflow_rules: set[str]) -> None:
    assert rules["train"] == len(tw.E2E["models"]), rules
    assert not set(rules) & UPSTREAM_OF_TRAIN, rules
    assert set(rules) - {"train", "all"} <= DOWNSTREAM_OF_TRAIN, rules
    # What consumes the model must follow it.
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
    # A dry run leaves the shared run as it was: still nothing to do.
    assert tw.dry_run(state) == []


def test_adding_a_model_runs_only_that_models_jobs(copy_of_state: Path) -> None:
    _rewrite_config(copy_of_state, models=[*tw.E2E["models"], "style_monet"])
    jobs = tw.dry_run(copy_of_state)
    rules = tw.rule_counts(jobs)
    assert rules["train"] == 1 and rules["download_pretrained"] == 1
    assert not set(rules) & PREPROCESSING, rules
    per_model = [job for job in jobs if "model" in job.wildcards]
    assert per_model and {job.wildcards["model"] for job in per_model} == {"style_monet"}


def test_a_changed_training_parameter_reruns_training_not_preprocessing(
    copy_of_state: Path, workflow_rules: set[str]
) -> None:
    config = yaml.safe_load((copy_of_state / "config.yaml").read_text(encoding="utf-8"))
    _rewrite_config(copy_of_state, train={"lr": config["train"]["lr"] / 2})
    _assert_train_and_downstream(tw.rule_counts(tw.dry_run(copy_of_state)), workflow_rules)
