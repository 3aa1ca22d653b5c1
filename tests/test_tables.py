"""Summary tables: a row per configured model, both directions, best marks, three formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrct.evaluation.hu_metrics import HU_METRICS
from mrct.evaluation.metrics import IMAGE_METRICS, MASKED_METRICS
from mrct.evaluation.tables import read_metric_tables, summarize, to_latex, to_markdown, write_direction_tables


def fake_metrics(models, n_slices=6, seed=0, n_patients=2):
    """Per-slice metrics where the i-th model is better by i steps (so 'best' is known)."""
    rng = np.random.default_rng(seed)
    rows = []
    for rank, model in enumerate(models):
        for direction in ("mr2ct", "ct2mr"):
            for z in range(n_slices):
                row = {"model": model, "patient": f"p{z % n_patients}", "slice": z, "direction": direction}
                for metric in [*IMAGE_METRICS, *MASKED_METRICS]:
                    row[metric] = 0.5 + 0.1 * rank + rng.normal(0, 0.01)
                for metric in HU_METRICS:
                    row[metric] = (100 - 10 * rank + rng.normal(0, 1)) if direction == "mr2ct" else np.nan
                rows.append(row)
    return pd.DataFrame(rows)


MODELS = ["scratch", "skimage_photos", "horse2zebra"]


@pytest.mark.parametrize("direction", ["mr2ct", "ct2mr"])
def test_one_row_per_configured_model_in_order(direction):
    table = summarize(fake_metrics(MODELS), MODELS, direction)
    assert list(table["model"]) == MODELS
    assert table.loc[2, "category"] == "animal"
    assert (table["n_slices"] == 6).all() and (table["n_patients"] == 2).all()
    assert "psnr_avg" in table and "vif_std" in table
    assert "psnr_masked_avg" in table and "uqi_masked_std" in table  # masked beside whole-slice
    assert ("hu_mae_avg" in table) == (direction == "mr2ct")


def test_best_marks_follow_the_metric_direction():
    table = summarize(fake_metrics(MODELS), MODELS, "mr2ct")
    last = table.loc[2, "best"].split(";")
    assert "psnr" in last and "hu_mae" in last  # higher PSNR, lower MAE (HU) for the third model
    assert "mae" in table.loc[0, "best"].split(";")  # 8-bit MAE grows with rank here: lowest wins


def test_avg_and_std_are_right():
    data = fake_metrics(["scratch"])
    table = summarize(data, ["scratch"], "ct2mr")
    values = data[(data["direction"] == "ct2mr")]["ssim"]
    assert table.loc[0, "ssim_avg"] == pytest.approx(values.mean())
    assert table.loc[0, "ssim_std"] == pytest.approx(values.std(ddof=1))


def test_missing_model_is_an_error():
    with pytest.raises(ValueError, match="style_monet"):
        summarize(fake_metrics(MODELS), [*MODELS, "style_monet"], "mr2ct")


def test_metrics_without_the_masked_columns_are_an_error():
    old = fake_metrics(MODELS).drop(columns=["ssim_masked"])
    with pytest.raises(ValueError, match="ssim_masked"):
        summarize(old, MODELS, "ct2mr")


def test_markdown_and_latex_bold_the_best(tmp_path):
    table = summarize(fake_metrics(MODELS), MODELS, "ct2mr")
    md = to_markdown(table, "CT to MR")
    # Two blocks: inside the head mask (first: it ranks the models), then the whole slice.
    assert all(md.count(f"| {m} |") == 2 for m in MODELS)
    assert md.index("inside the head mask") < md.index("whole slice")
    model_lines = [line for line in md.splitlines() if line.startswith("| horse2zebra |")]
    assert all("**" in line for line in model_lines)  # the last model is best on PSNR, masked and not
    tex = to_latex(table, "caption", "tab:x")
    assert r"\textbf{" in tex and r"skimage\_photos" in tex and tex.count(r"\\") == 2 * (2 + len(MODELS))
    assert r"\label{tab:x_masked}" in tex and r"\label{tab:x_whole}" in tex
    mr2ct = to_latex(summarize(fake_metrics(MODELS), MODELS, "mr2ct"), "caption", "tab:y")
    assert mr2ct.count(r"\begin{table}") == 3 and r"\label{tab:y_hu}" in mr2ct
    write_direction_tables(table, "ct2mr", tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    again = pd.read_csv(tmp_path / "t.csv")
    assert list(again["model"]) == MODELS and r"\textbf{" in (tmp_path / "t.tex").read_text(encoding="utf-8")
    assert "**" in (tmp_path / "t.md").read_text(encoding="utf-8")


def test_read_metric_tables_keeps_inf(tmp_path):
    data = fake_metrics(["scratch"])
    data.loc[0, "psnr"] = np.inf
    data.to_csv(tmp_path / "scratch.csv", index=False)
    back = read_metric_tables([tmp_path / "scratch.csv"])
    assert np.isinf(back.loc[0, "psnr"]) and len(back) == len(data)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_metric_tables([tmp_path / "nope.csv"])
