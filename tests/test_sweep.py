"""The study design: runs and their paths, folds, nested training sets, design checks, gathering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrct.evaluation.runs import learning_curve, replicate_table, reported_slices
from mrct.reader_study.selection import check_selection_metric, select_models
from mrct.slices.split import check_design, check_reader_study_slices, patient_folds, run_manifest
from mrct.slices.sweep import NEVER_TESTED, Run, Sweep, selection_patients, training_patients

PATIENTS = [f"p{i:02d}" for i in range(10)]
READER = {"images_per_modality": 8, "selection_patients": 1, "model": None}


def test_single_run_keeps_the_short_paths_and_a_sweep_names_every_run():
    single = Sweep()
    assert single.single and single.runs() == [Run(0, 0, None)] and single.tag(Run(0, 0)) == ""
    assert single.parse("") == Run(0, 0, None)
    sweep = Sweep(folds=3, replicates=2, train_sizes=(2,))
    runs = sweep.runs()
    assert len(runs) == 3 * 2 * 2 and len(set(map(sweep.tag, runs))) == len(runs)
    assert sweep.tag(Run(1, 0, None)) == "/fold1_rep0_nall" and sweep.tag(Run(2, 1, 2)) == "/fold2_rep1_n2"
    assert all(sweep.parse(sweep.tag(run)) == run for run in runs)
    assert sweep.pooled_runs() == [Run(0, 0), Run(1, 0), Run(2, 0)]
    assert len(sweep.full_runs()) == 6
    assert sweep.seed(Run(0, 1), 42) == 1042 and sweep.seed(Run(2, 0), 42) == 42
    with pytest.raises(ValueError, match="not a run of this sweep"):
        sweep.parse("/fold3_rep0_nall")
    # replicates alone leave the single path too
    assert Sweep(replicates=2).tag(Run(0, 0)) == "/fold0_rep0_nall"


def test_folds_are_balanced_seeded_and_test_every_patient_once():
    folds = patient_folds(PATIENTS, 3, 0.7, seed=1)
    assert sorted(folds) == PATIENTS and set(folds.values()) == {0, 1, 2}
    sizes = sorted(list(folds.values()).count(k) for k in range(3))
    assert sizes == [3, 3, 4]
    assert patient_folds(list(reversed(PATIENTS)), 3, 0.7, seed=1) == folds
    assert patient_folds(PATIENTS, 3, 0.7, seed=2) != folds
    single = patient_folds(PATIENTS, 1, 0.7, seed=1)
    assert sorted(single.values()).count(NEVER_TESTED) == 7 and sorted(single.values()).count(0) == 3
    with pytest.raises(ValueError, match=r"split.folds \(11\) is more than the number of patients \(10\)"):
        patient_folds(PATIENTS, 11, 0.7, seed=1)


def test_smaller_training_sets_are_nested_and_keep_the_test_patients():
    folds = patient_folds(PATIENTS, 2, 0.7, seed=0)
    full = training_patients(folds, 0, None, seed=0)
    assert full == sorted(p for p, f in folds.items() if f != 0)
    sizes = [training_patients(folds, 0, n, seed=0) for n in (1, 2, 4)]
    assert [len(s) for s in sizes] == [1, 2, 4]
    assert set(sizes[0]) <= set(sizes[1]) <= set(sizes[2]) <= set(full)
    manifest = pd.DataFrame({"patient": PATIENTS, "slice": 0, "split": "test", "fold": [folds[p] for p in PATIENTS]})
    small = run_manifest(manifest, Run(0, 0, 2), seed=0)
    assert set(small.loc[small["split"] == "test", "patient"]) == {p for p, f in folds.items() if f == 0}
    assert set(small.loc[small["split"] == "train", "patient"]) == set(sizes[1])


def test_design_checks_name_the_key_and_both_numbers():
    with pytest.raises(ValueError, match=r"split.folds \(12\) is more than the number of patients \(10\)"):
        check_design(PATIENTS, 12, 0.7, 0, (), READER, 8)
    # 10 patients, 70/30: 3 tested, 1 selection -> 2 reader patients x 8 slices = 16 < 40 needed
    with pytest.raises(ValueError, match=r"reader_study.images_per_modality \(80\) needs 40 .* at most 16"):
        check_design(PATIENTS, 1, 0.7, 0, (), {**READER, "images_per_modality": 80}, 8)
    with pytest.raises(ValueError, match=r"reader_study.selection_patients \(3\) leaves none of the 3 tested"):
        check_design(PATIENTS, 1, 0.7, 0, (), {**READER, "selection_patients": 3}, 8)
    with pytest.raises(ValueError, match=r"split.train_sizes \(\[2, 8\]\): \[8\] not below the 6 training patients"):
        check_design(PATIENTS, 2 + 1, 0.7, 0, (2, 8), READER, 8)
    check_design(PATIENTS, 5, 0.7, 0, (2,), {**READER, "images_per_modality": 80}, 8)  # 9 x 8 = 72 >= 40
    check_design(PATIENTS, 1, 0.7, 0, (), {**READER, "selection_patients": 3, "model": "scratch"}, 8)
    with pytest.raises(ValueError, match="reader_study.metric: expected a metric of both directions' tables"):
        check_selection_metric("hu_mae")
    check_selection_metric("ssim_masked")


def test_split_step_counts_the_reader_study_slices_exactly():
    manifest = pd.DataFrame({"patient": ["a", "a", "b", "b", "b", "c"], "slice": [0, 1, 0, 1, 2, 0],
                             "split": "test", "fold": [0, 0, 1, 1, 1, 2]})
    chosen = selection_patients(["a", "b", "c"], 1, seed=0)
    available = int((~manifest["patient"].isin(chosen)).sum())
    check_reader_study_slices(manifest, 2 * available, 1, seed=0)
    with pytest.raises(ValueError, match=rf"images_per_modality \({2 * available + 2}\) needs {available + 1} .* "
                                         rf"have {available}"):
        check_reader_study_slices(manifest, 2 * available + 2, 1, seed=0)


def metric_rows(model, patient, replicate, value, n_train=4, fold=0, slices=2):
    return [{"model": model, "patient": patient, "slice": s, "direction": d, "fold": fold, "replicate": replicate,
             "n_train_patients": n_train, "ssim": value + 0.5, "ssim_masked": value, "mae": 1.0, "mae_masked": 1.0}
            for s in range(slices) for d in ("mr2ct", "ct2mr")]


def test_tables_average_replicates_on_the_full_training_set_and_report_their_spread():
    rows = [*metric_rows("a", "p1", 0, 0.5), *metric_rows("a", "p1", 1, 0.7),
            *metric_rows("a", "p1", 0, 0.1, n_train=2), *metric_rows("a", "p2", 0, 0.3, fold=1),
            *metric_rows("a", "p2", 1, 0.5, fold=1)]
    slices = pd.DataFrame(rows)
    reported = reported_slices(slices)
    assert len(reported) == 2 * 2 * 2  # patients x slices x directions, once each
    p1 = reported[(reported["patient"] == "p1") & (reported["direction"] == "mr2ct")]
    assert np.allclose(p1["ssim_masked"], 0.6) and (p1["n_replicates"] == 2).all()
    spread = replicate_table(slices, ["a"]).set_index(["direction", "metric"])
    assert spread.loc[("mr2ct", "ssim_masked"), "n_replicates"] == 2
    assert np.isclose(spread.loc[("mr2ct", "ssim_masked"), "mean"], 0.5)  # replicate means 0.4 and 0.6
    assert np.isclose(spread.loc[("mr2ct", "ssim_masked"), "sd_between_replicates"], np.std([0.4, 0.6], ddof=1))
    curve = learning_curve(slices, ["a"])
    assert sorted(curve["n_train_patients"].unique()) == [2, 4]
    # By hand: with 4 training patients p1 averages its replicates (0.6) and p2 its (0.4); with 2,
    # only p1's one run (0.1) exists, and an SD over one patient is undefined.
    masked = curve[(curve["direction"] == "mr2ct") & (curve["metric"] == "ssim_masked")].set_index("n_train_patients")
    assert np.isclose(masked.loc[4, "mean"], 0.5) and np.isclose(masked.loc[4, "sd"], np.std([0.6, 0.4], ddof=1))
    assert np.isclose(masked.loc[2, "mean"], 0.1) and np.isnan(masked.loc[2, "sd"])


def test_selection_uses_only_the_selection_patients_and_a_masked_metric_by_name():
    # model b is better on p1 only; model a on the others
    rows = [*metric_rows("a", "p1", 0, 0.2), *metric_rows("b", "p1", 0, 0.9)]
    for patient in ("p2", "p3"):
        rows += [*metric_rows("a", patient, 0, 0.9), *metric_rows("b", patient, 0, 0.2)]
    slices = pd.DataFrame(rows)
    chosen = selection_patients(["p1", "p2", "p3"], 1, seed=5)
    table = select_models(slices, ["a", "b"], "ssim_masked", 1, seed=5)
    assert (table["patients"] == " ".join(chosen)).all() and (table["metric"] == "ssim_masked").all()
    assert set(table["model"]) == {"b" if chosen == ["p1"] else "a"}
    fixed = select_models(slices, ["a", "b"], "ssim_masked", 1, seed=5, fixed="a")
    assert set(fixed["model"]) == {"a"} and (fixed["patients"] == "").all()


def test_report_names_the_control_and_the_selection_patients(tmp_path):
    from mrct.evaluation.figures import learning_curve_plot, save_figure
    from mrct.evaluation.significance import significance_table, to_markdown
    from mrct.report import design_section

    rows = []
    for model, value in (("random_init", 0.4), ("horse2zebra", 0.6)):
        for patient in ("p1", "p2", "p3"):
            for replicate, shift in ((0, 0.0), (1, 0.02)):
                rows += metric_rows(model, patient, replicate, value + shift + 0.01 * int(patient[1]))
    slices = pd.DataFrame(rows)
    table = significance_table(reported_slices(slices), ["random_init", "horse2zebra"], baseline="random_init",
                               n_bootstrap=200)
    assert set(table["control"]) == {"random_init"}
    assert to_markdown(table, 0.05).startswith("### Significance against random_init")
    paths = {"selection_table": tmp_path / "selection.csv", "replicates_table": tmp_path / "replicates.csv",
             "training_table": tmp_path / "training.csv", "learning_curve": tmp_path / "curve.png"}
    select_models(slices, ["random_init", "horse2zebra"], "ssim_masked", 1, 0).to_csv(paths["selection_table"],
                                                                                        index=False)
    replicate_table(slices, ["random_init", "horse2zebra"]).to_csv(paths["replicates_table"], index=False)
    pd.DataFrame({"model": ["random_init"], "trainable_parameters": [263168]}).to_csv(paths["training_table"],
                                                                                     index=False)
    save_figure(learning_curve_plot(learning_curve(slices, ["random_init", "horse2zebra"])), paths["learning_curve"])
    html = design_section({**paths, "folds": 3, "replicates": 2, "train_sizes": [], "control": "random_init"})
    chosen = selection_patients(["p1", "p2", "p3"], 1, 0)[0]
    assert "3-fold cross-validation" in html and "trained 2 times per fold" in html
    assert f"<td>{chosen}</td>" in html and "isolates pretraining" in html
    assert "mean - random_init" in html and "sd between replicates" in html and "<img" in html
