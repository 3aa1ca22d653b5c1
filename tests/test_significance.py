"""Wilcoxon against scratch, Holm correction, rank-biserial effect size, and the skip cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon
from statsmodels.stats.multitest import multipletests
from test_tables import fake_metrics

from mrct.evaluation.significance import holm, rank_biserial, significance_table, to_markdown


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


def test_models_against_scratch():
    models = ["scratch", "skimage_photos", "horse2zebra"]
    data = fake_metrics(models, n_slices=10)
    table = significance_table(data, models)
    assert set(table["model"]) == {"skimage_photos", "horse2zebra"}
    assert set(table["direction"]) == {"mr2ct", "ct2mr"}
    assert len(table) == 2 * (7 + 3) + 2 * 7
    psnr = table[(table["metric"] == "psnr") & (table["direction"] == "ct2mr")].set_index("model")
    # every slice is better by 0.1 -> all positive differences: r = 1, exact p = 2 / 2^10
    assert psnr.loc["horse2zebra", "rank_biserial"] == 1.0 and psnr.loc["horse2zebra", "better"]
    own = data[data["direction"] == "ct2mr"]
    diff = own[own["model"] == "horse2zebra"]["psnr"].to_numpy() - own[own["model"] == "scratch"]["psnr"].to_numpy()
    assert psnr.loc["horse2zebra", "p_value"] == pytest.approx(wilcoxon(diff).pvalue)
    assert psnr.loc["horse2zebra", "p_holm"] == pytest.approx(min(1, 2 * wilcoxon(diff).pvalue))
    assert psnr["significant"].all()
    mae = table[(table["metric"] == "hu_mae")].set_index("model")
    assert mae.loc["horse2zebra", "better"]  # lower HU MAE than scratch
    assert "Holm" in to_markdown(table, 0.05)


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
    table = significance_table(pd.concat([data, twin]), ["scratch", "horse2zebra"])
    assert (table["p_value"] == 1.0).all() and not table["significant"].any()
