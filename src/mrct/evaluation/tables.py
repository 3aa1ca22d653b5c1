"""Summary tables of the metrics: AVG and STD per model and direction, like the study's Tables III/IV.

Rows are models in the configured order, with their category (zoo category, baseline, or local
pretraining); columns are the AVG and STD of each metric over the test slices. STD is the sample
standard deviation (ddof=1), NaN with a single slice. The best AVG per column (highest or lowest,
depending on the metric) is marked: bold in Markdown and LaTeX, listed in the ``best`` column of
the CSV. For MR->CT the table also carries the per-patient HU metrics of the re-stacked volumes
(``vol_hu_*``), the SynthRAD2023 way of reporting them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.evaluation.metrics import HIGHER_IS_BETTER, HU_METRICS, IMAGE_METRICS
from mrct.io.atomic import write_text_atomic
from mrct.models.registry import model_info
from mrct.slices.manifest import DIRECTIONS

LABELS = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "uqi": "UQI", "vif": "VIF", "mae": "MAE", "mse": "MSE", "rmse": "RMSE",
    "hu_mae": "MAE (HU)", "hu_psnr": "PSNR (HU, dB)", "hu_ssim": "SSIM (HU)",
    "vol_hu_mae": "Vol. MAE (HU)", "vol_hu_psnr": "Vol. PSNR (HU, dB)", "vol_hu_ssim": "Vol. SSIM (HU)",
}
DECIMALS = {"ssim": 4, "uqi": 4, "vif": 4, "hu_ssim": 4, "vol_hu_ssim": 4}


def direction_metrics(direction: str, with_volumes: bool = False) -> list[str]:
    """Metric columns reported for one direction (HU metrics only make sense for MR->CT)."""
    if direction == "ct2mr":
        return list(IMAGE_METRICS)
    volumes = [f"vol_{m}" for m in HU_METRICS] if with_volumes else []
    return [*IMAGE_METRICS, *HU_METRICS, *volumes]


def higher_is_better(metric: str) -> bool:
    return HIGHER_IS_BETTER[metric.removeprefix("vol_")]


def summarize(
    slices: pd.DataFrame, models: Sequence[str], direction: str, patients: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per configured model: category, n, AVG/STD of every metric, and the best marks."""
    with_volumes = patients is not None and direction == "mr2ct"
    metrics = direction_metrics(direction, with_volumes)
    records = []
    for model in models:
        own = slices[(slices["model"] == model) & (slices["direction"] == direction)]
        if own.empty:
            raise ValueError(f"metrics of {model!r}: expected {direction} rows, got none")
        record = {"model": model, "category": model_info(model)["category"], "n_slices": len(own)}
        for metric in metrics:
            if metric.startswith("vol_"):
                values = patients.loc[patients["model"] == model, metric.removeprefix("vol_")]
            else:
                values = own[metric]
            values = values.astype(float).dropna()
            record[f"{metric}_avg"] = float(values.mean()) if len(values) else math.nan
            record[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        records.append(record)
    table = pd.DataFrame.from_records(records)
    table["best"] = [";".join(m for m in metrics if _is_best(table, m, i)) for i in range(len(table))]
    return table


def _is_best(table: pd.DataFrame, metric: str, row: int) -> bool:
    column = table[f"{metric}_avg"]
    if column.isna().all() or pd.isna(column.iloc[row]):
        return False
    best = column.max() if higher_is_better(metric) else column.min()
    return bool(np.isclose(column.iloc[row], best, rtol=1e-12, atol=0) or column.iloc[row] == best)


def format_value(value: float, metric: str) -> str:
    if pd.isna(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{DECIMALS.get(metric, 2)}f}"


def _metrics_of(table: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_avg") for c in table.columns if c.endswith("_avg")]


def to_markdown(table: pd.DataFrame, title: str) -> str:
    """Markdown table; the best AVG per column in bold. Arrows say which way is better."""
    metrics = _metrics_of(table)
    header = ["Model", "Category", "n"]
    for m in metrics:
        arrow = "↑" if higher_is_better(m) else "↓"
        header += [f"{LABELS[m]} {arrow} AVG", f"{LABELS[m]} STD"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in table.iterrows():
        best = set(row["best"].split(";"))
        cells = [row["model"], row["category"], str(row["n_slices"])]
        for m in metrics:
            avg = format_value(row[f"{m}_avg"], m)
            cells += [f"**{avg}**" if m in best else avg, format_value(row[f"{m}_std"], m)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for char, repl in [("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#")]:
        text = text.replace(char, repl)
    return text


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (AVG and STD sub-columns per metric); the best AVG per column in bold."""
    metrics = _metrics_of(table)
    lines = [
        r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{{label}}}",
        r"\begin{tabular}{ll" + "rr" * len(metrics) + "}", r"\toprule",
        "Model & Category & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{_tex_escape(LABELS[m])}}}" for m in metrics) + r" \\",
        " & & " + " & ".join("AVG & STD" for _ in metrics) + r" \\",
        r"\midrule",
    ]
    for _, row in table.iterrows():
        best = set(row["best"].split(";"))
        cells = [_tex_escape(row["model"]), _tex_escape(row["category"])]
        for m in metrics:
            avg = format_value(row[f"{m}_avg"], m)
            cells += [rf"\textbf{{{avg}}}" if m in best else avg, format_value(row[f"{m}_std"], m)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def read_metric_tables(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate per-model metric CSVs (``evaluate`` outputs); inf survives the round trip."""
    frames = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: expected a metrics CSV, file not found")
        frames.append(pd.read_csv(path))
    if not frames:
        raise ValueError("expected at least one metrics CSV, got none")
    return pd.concat(frames, ignore_index=True)


def write_direction_tables(
    table: pd.DataFrame, direction: str, csv_path: str | Path, md_path: str | Path, tex_path: str | Path
) -> None:
    """Write one direction's summary as CSV, Markdown and LaTeX (atomically)."""
    write_text_atomic(csv_path, table.to_csv(index=False))
    write_text_atomic(md_path, to_markdown(table, DIRECTIONS[direction].title))
    write_text_atomic(tex_path, to_latex(table, f"Test-set metrics, {DIRECTIONS[direction].title}: AVG and STD over slices", f"tab:metrics_{direction}"))
