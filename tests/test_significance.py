"""Patient-level Wilcoxon, cluster bootstrap, Holm, and the per-slice rows kept for comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon
from statsmodels.stats.multitest import multipletests

from mrct.evaluation.significance import (
    bootstrap_ci,
    compare_models,
    holm,
    patient_means,
    rank_biserial,
    read_patient_tables,
    significance_table,
    to_markdown,
    wilcoxon_signed_rank,
)
from test_tables import fake_metrics


def clustered_slices(n_patients=6, effect=0.5, seed=0, models=("scratch", "horse2zebra")):
    """Per-slice PSNR with a strong patient effect, an unequal number of slices per patient, and a
    model effect that varies between patients (so patient-level tests are not trivially extreme)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        level, own_effect = rng.normal(25, 3), effect + rng.normal(0, 1.0)
        for z in range(3 + p % 3):
            for rank, model in enumerate(models):
                value = level + rank * own_effect + rng.normal(0, 0.3)
                rows.append({"model": model, "patient": f"p{p}", "slice": z, "direction": "ct2mr", "psnr": value})
    return pd.DataFrame(rows)


def test_holm_matches_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.02])
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])
    with_nan = holm([0.01, np.nan, 0.04])
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])


def test_rank_biserial_extremes_and_a_worked_case():
    assert rank_biserial(np.array([1.0, 2.0, 3.0])) == 1.0
    assert rank_biserial(np.array([-1.0, -2.0, 0.0])) == -1.0
    # ranks of |d| = 1,2,3,4; positives hold ranks 4 and 2, negatives 1 and 3 -> (6 - 4) / 10
    assert rank_biserial(np.array([4.0, -1.0, 2.0, -3.0])) == pytest.approx(0.2)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 12])
def test_p_min_attainable_is_two_over_two_to_the_n(n):
    d = np.random.default_rng(n).normal(0, 1, n)  # distinct, non-zero: the exact test
    result = wilcoxon_signed_rank(d)
    assert result["method"] == "exact"
    assert result["p_min_attainable"] == pytest.approx(min(1.0, 2 / 2**n), rel=1e-12)
    assert wilcoxon_signed_rank(np.abs(d))["p_value"] == pytest.approx(result["p_min_attainable"])


def test_ties_and_zeros_use_an_exhaustive_permutation_test():
    result = wilcoxon_signed_rank(np.array([0.0, 1.0, 1.0, 2.0, -3.0]))
    assert result["method"].startswith("exact permutation") and result["n_nonzero"] == 4
    assert result["p_min_attainable"] == pytest.approx(2 / 2**4)  # zeros count for nothing
    zero = wilcoxon_signed_rank(np.zeros(4))
    assert zero["p_value"] == 1.0 and "zero" in zero["note"]


def test_patient_level_p_equals_scipy_on_independently_computed_patient_means():
    data = clustered_slices(n_patients=7)
    table = significance_table(data, ["scratch", "horse2zebra"], seed=3, n_bootstrap=2000)
    row = table[(table["unit"] == "patient") & (table["metric"] == "psnr") & (table["direction"] == "ct2mr")].iloc[0]
    sums: dict[tuple[str, str], list[float]] = {}
    for record in data.to_dict("records"):
        sums.setdefault((record["model"], record["patient"]), []).append(record["psnr"])
    patients = sorted({p for _, p in sums})
    d = [sum(sums[("horse2zebra", p)]) / len(sums[("horse2zebra", p)]) - sum(sums[("scratch", p)]) / len(sums[("scratch", p)])
         for p in patients]
    assert set(table["direction"]) == {"ct2mr"}  # no mr2ct rows in, none out
    assert row["n"] == row["n_patients"] == 7 and row["method"] == "exact"
    assert row["p_value"] == pytest.approx(wilcoxon(d, method="exact").pvalue, rel=1e-12)
    assert row["p_min_attainable"] == pytest.approx(2 / 2**7)
    assert row["mean_difference"] == pytest.approx(np.mean(d))
    assert row["ci_low"] < np.mean(d) < row["ci_high"]


def test_duplicating_every_slice_leaves_patient_level_results_unchanged():
    data = clustered_slices(n_patients=8)
    twice = pd.concat([data, data.assign(slice=data["slice"] + 1000)], ignore_index=True)
    models = ["scratch", "horse2zebra"]
    once_table = significance_table(data, models, seed=7, n_bootstrap=2000).set_index(["direction", "metric", "unit"])
    twice_table = significance_table(twice, models, seed=7, n_bootstrap=2000).set_index(["direction", "metric", "unit"])
    key = ("ct2mr", "psnr")
    patient_once, patient_twice = once_table.loc[(*key, "patient")], twice_table.loc[(*key, "patient")]
    for column in ("n", "p_value", "p_holm", "p_min_attainable", "ci_low", "ci_high", "mean_difference"):
        assert patient_twice[column] == patient_once[column], column
    # The per-slice test counts every slice as new evidence: its n doubles and its p-value drops.
    slice_once, slice_twice = once_table.loc[(*key, "slice")], twice_table.loc[(*key, "slice")]
    assert slice_twice["n"] == 2 * slice_once["n"] and slice_twice["n_patients"] == slice_once["n_patients"] == 8
    assert slice_twice["p_value"] < slice_once["p_value"] / 5
    assert slice_once["p_value"] < patient_once["p_value"]
    assert np.isnan(slice_once["ci_low"]) and "not independent" in slice_once["note"]


def test_cluster_bootstrap_ci_covers_the_known_mean_difference():
    true_difference = 1.5
    rng = np.random.default_rng(11)
    d = true_difference + rng.normal(0, 1, 12)
    low, high = bootstrap_ci(d, seed=0, n_resamples=5000)
    assert low < true_difference < high and low < d.mean() < high
    assert (low, high) == bootstrap_ci(d, seed=0, n_resamples=5000)  # seeded: reproducible
    assert (low, high) != bootstrap_ci(d, seed=1, n_resamples=5000)
    # Over many synthetic studies the 95 % interval covers the true difference about 95 % of the time
    # (the percentile bootstrap is a little narrow with 15 patients).
    covered = 0
    for study in range(300):
        sample = true_difference + np.random.default_rng(100 + study).normal(0, 1, 15)
        lo, hi = bootstrap_ci(sample, seed=study, n_resamples=1000)
        covered += lo <= true_difference <= hi
    assert 0.85 <= covered / 300 <= 0.99
    assert np.isnan(bootstrap_ci(np.array([1.0]), 0, 100)[0])
    assert bootstrap_ci(np.full(4, 2.0), 0, 100) == (2.0, 2.0)


def test_an_already_per_patient_table_is_tested_the_same_way(tmp_path):
    rng = np.random.default_rng(5)
    paths = {}
    for rank, model in enumerate(["scratch", "horse2zebra"]):
        frame = pd.DataFrame({"patient": [f"p{i}" for i in range(6)], "mae_hu": 80 - 5 * rank + rng.normal(0, 2, 6),
                              "psnr_hu": 25 + rng.normal(0, 1, 6), "ssim_hu": 0.8 + rng.normal(0, 0.01, 6),
                              "hd95_bone_mm": 3.0 - rank + rng.normal(0, 0.1, 6)})
        paths[model] = tmp_path / f"{model}_volumes.csv"
        frame.to_csv(paths[model], index=False)
    volumes = read_patient_tables(paths)
    assert patient_means(volumes, ["mae_hu"])["mae_hu"].tolist() == pytest.approx(
        volumes.sort_values(["model", "patient"])["mae_hu"].tolist())
    table = compare_models(volumes, ["scratch", "horse2zebra"], "mr2ct", ["mae_hu", "psnr_hu", "ssim_hu"], seed=0, n_bootstrap=1000)
    mae = table[table["metric"] == "mae_hu"].iloc[0]
    base, model = (pd.read_csv(paths[m]) for m in ("scratch", "horse2zebra"))
    assert mae["unit"] == "patient" and mae["n"] == 6
    assert mae["p_value"] == pytest.approx(wilcoxon(model["mae_hu"] - base["mae_hu"]).pvalue)
    assert mae["better"]  # lower HU MAE than scratch
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_patient_tables({"scratch": tmp_path / "absent.csv"})
    # The workflow's significance table carries the same volume rows beside the slice metrics.
    slices = fake_metrics(["scratch", "horse2zebra"], n_slices=6)
    full = significance_table(slices, ["scratch", "horse2zebra"], seed=0, n_bootstrap=1000, volumes=volumes)
    volume_rows = full[full["metric"].isin(["mae_hu", "psnr_hu", "ssim_hu"])].reset_index(drop=True)
    assert set(volume_rows["unit"]) == {"patient"} and set(volume_rows["direction"]) == {"mr2ct"}
    pd.testing.assert_frame_equal(volume_rows, table.reset_index(drop=True), check_dtype=False)
    assert len(full) > len(volume_rows)
    # Tissue overlap goes through the same test: a smaller bone HD95 than scratch is better.
    hd95 = full[full["metric"] == "hd95_bone_mm"].iloc[0]
    assert hd95["unit"] == "patient" and hd95["n"] == 6 and hd95["better"]


def test_holm_families_are_direction_metric_and_unit():
    models = ["scratch", "skimage_photos", "horse2zebra", "style_monet"]
    table = significance_table(fake_metrics(models, n_slices=12, n_patients=6), models, n_bootstrap=20)  # CIs are not checked here
    assert set(table["unit"]) == {"patient", "slice"}
    assert len(table) == 2 * 3 * (2 * 14 + 3)  # units x models x (ct2mr + mr2ct metrics)
    for _, family in table.groupby(["direction", "metric", "unit"]):
        assert len(family) == 3
        assert family["p_holm"].to_numpy() == pytest.approx(multipletests(family["p_value"], method="holm")[1])
    patient = table[table["unit"] == "patient"]
    assert (patient["n"] == 6).all() and np.allclose(patient["p_min_attainable"], 2 / 2**6, rtol=1e-12)
    assert table.loc[(table["metric"] == "hu_mae") & (table["model"] == "style_monet"), "better"].all()


def test_markdown_names_the_unit_and_what_five_patients_allow():
    models = ["scratch", "horse2zebra"]
    table = significance_table(fake_metrics(models, n_slices=10, n_patients=5), models, n_bootstrap=200)
    md = to_markdown(table, 0.05)
    assert "unit of analysis = patient" in md and "n = 5 test patients" in md and "0.0625" in md
    assert "no model can be significantly different" in md and "Holm" in md
    assert not table.loc[table["unit"] == "patient", "significant"].any()  # 5 patients: p >= 0.0625 always
    assert table.loc[table["unit"] == "slice", "significant"].any()  # ... while per-slice p-values say otherwise


def test_scratch_absent_or_alone_is_skipped_with_a_reason():
    data = fake_metrics(["skimage_photos"])
    table = significance_table(data, ["skimage_photos"])
    assert len(table) == 1 and "not among the configured models" in table.loc[0, "note"]
    alone = significance_table(fake_metrics(["scratch"]), ["scratch"])
    assert len(alone) == 1 and "no model besides" in alone.loc[0, "note"]
    assert "skipped" in to_markdown(alone, 0.05)


def test_identical_models_give_p_one():
    data = fake_metrics(["scratch"])
    twin = data.assign(model="horse2zebra")
    table = significance_table(pd.concat([data, twin]), ["scratch", "horse2zebra"], n_bootstrap=100)
    assert (table["p_value"] == 1.0).all() and not table["significant"].any()
    assert (table.loc[table["unit"] == "patient", "ci_low"] == 0.0).all()


def test_unknown_unit_or_metric_is_an_error():
    data = clustered_slices()
    with pytest.raises(ValueError, match="unit"):
        compare_models(data, ["scratch", "horse2zebra"], "ct2mr", ["psnr"], unit="voxel")
    with pytest.raises(ValueError, match="missing"):
        compare_models(data, ["scratch", "horse2zebra"], "ct2mr", ["nope"])
