"""The study design end to end on the tiny demo: folds, replicates, control, selection, checks.

The suite's shared run (``e2e_run``), copied and run again as a 2-fold sweep with 2 replicate
seeds of scratch and skimage_photos (its preprocessing is reused: only the split, training and
what follows run; the zoo-sized control random_init is too slow for a CPU test,
tests/test_control.py checks it), shows what the pipeline promises a study: every patient tested
out of fold, n = all patients in the tests, replicates that differ, a table of what was trained,
and a reader study that never shows the patients its model was chosen on. Dry runs show that a
config that cannot finish stops before any job, naming the key and the numbers.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py

pytestmark = pytest.mark.slow

TARGETS = ["results/tables/significance.csv", "results/tables/replicates.csv", "results/tables/training.csv",
           "results/reader_study/key.csv", "results/reader_study/selection.csv"]


def test_a_config_that_cannot_finish_fails_when_the_dag_is_built(tmp_path):
    too_many_folds = tw.write_workdir(tmp_path / "folds", tw.tiny_config(split={"folds": 4}))
    result = tw.snakemake(too_many_folds, "--dry-run", "--cores", "1", check=False)
    assert result.returncode != 0
    assert "split.folds (4) is more than the number of patients (3)" in result.stdout + result.stderr
    # 3 patients, 70/30: 1 tested (all shown: the model is named), 2 slices per patient; 6 images need 3.
    too_many_images = tw.write_workdir(tmp_path / "images", tw.tiny_config(reader_study={"images_per_modality": 6}))
    result = tw.snakemake(too_many_images, "--dry-run", "--cores", "1", check=False)
    assert result.returncode != 0
    assert "reader_study.images_per_modality (6) needs 3 test slices per direction" in result.stdout + result.stderr
    assert "at most 2" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def crossvalidated(e2e_run, tmp_path_factory):
    config = tw.e2e_config(
        split={"folds": 2},
        train={"replicates": 2},
        models=["scratch", "skimage_photos"],
        reader_study={"images_per_modality": 2, "model": None, "selection_patients": 1},
    )
    workdir = tw.write_workdir(tw.copy_workdir(e2e_run, tmp_path_factory.mktemp("sweep") / "work"), config)
    result = tw.snakemake(workdir, "--cores", "2", *TARGETS, timeout=1500)
    reran = set(re.findall(r"^(?:local)?rule (\w+):", result.stdout + result.stderr, re.MULTILINE))
    assert "train" in reran and not reran & {"make_demo_patient", "bias_correct", "register"}, reran
    return workdir


def test_every_patient_is_tested_out_of_fold_and_the_tests_count_them_all(crossvalidated):
    patients = set(pd.read_csv(crossvalidated / "results/slices/manifest.csv")["patient"])
    # the shared run's 5 demo patients, less the mixed-up one that registration QA leaves out
    assert len(patients) == 4 and "demo003" not in patients
    for model in ("scratch", "skimage_photos"):
        metrics = pd.read_csv(crossvalidated / f"results/metrics/{model}.csv")
        assert set(metrics["patient"]) == patients
        assert (metrics.groupby("patient")["fold"].nunique() == 1).all()  # tested in one fold only
        assert metrics["fold"].nunique() == 2
        assert (metrics.groupby(["patient", "slice", "direction"]).size() == 2).all()  # once per replicate
    significance = pd.read_csv(crossvalidated / "results/tables/significance.csv")
    patient_rows = significance[significance["unit"] == "patient"]
    # n = every tested patient wherever the metric has values (VIF needs 41 px, more than these slices)
    assert len(patient_rows) and set(patient_rows["n"]) - {0} == {4}
    assert (patient_rows.loc[patient_rows["metric"] == "ssim_masked", "n"] == 4).all()
    # evaluate.control null without random_init: scratch
    assert set(patient_rows["control"]) == {"scratch"} and set(patient_rows["model"]) == {"skimage_photos"}


def test_replicates_are_separate_trainings_with_different_weights(crossvalidated):
    first, second = (torch.load(crossvalidated / f"results/models/scratch/fold0_rep{r}_nall/G_mr2ct.pth",
                                weights_only=False)["state_dict"] for r in (0, 1))
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[k], second[k]) for k in first)
    replicates = pd.read_csv(crossvalidated / "results/tables/replicates.csv")
    assert list(replicates.columns) == ["direction", "metric", "model", "n_replicates", "mean", "sd_between_replicates"]
    measured = replicates[replicates["mean"].notna()]  # VIF needs 41 px: no value on these slices
    assert len(measured) and (measured["n_replicates"] == 2).all()
    assert measured["sd_between_replicates"].notna().all()
    training = pd.read_csv(crossvalidated / "results/tables/training.csv")
    assert len(training) == 2 * 2 * 2  # models x folds x replicates
    assert set(training.groupby("replicate")["seed"].first()) == {7, 1007}
    assert (training["n_train_patients"] == 2).all()


def test_the_reader_study_never_shows_a_selection_patient(crossvalidated):
    selection = pd.read_csv(crossvalidated / "results/reader_study/selection.csv", dtype={"patients": str})
    assert list(selection.columns) == ["direction", "model", "metric", "value", "patients"]
    assert set(selection["metric"]) == {"ssim_masked"}
    chosen_on = {p for text in selection["patients"] for p in text.split()}
    assert len(chosen_on) == 1
    key = pd.read_csv(crossvalidated / "results/reader_study/key.csv")
    assert len(key) and not chosen_on & set(key["patient"].astype(str))


def test_training_set_sizes_are_runs_of_the_same_rule(tmp_path):
    """split.train_sizes adds nested smaller training sets: runs of rule train with their own
    folders, and the learning-curve figure."""
    workdir = tw.write_workdir(tmp_path / "sizes", tw.tiny_config(split={"train_sizes": [1]}))
    jobs = tw.dry_run(workdir)
    counts = tw.rule_counts(jobs)
    assert counts["train"] == 2 and counts["run_manifest"] == 2 and counts["learning_curve"] == 1
    outputs = {o for job in jobs if job.rule == "train" for o in job.outputs}
    assert {"results/models/scratch/fold0_rep0_n1/G_mr2ct.pth",
            "results/models/scratch/fold0_rep0_nall/G_mr2ct.pth"} <= outputs
