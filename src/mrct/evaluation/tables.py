"""Summary tables of the metrics: AVG and STD per model and direction, like the study's Tables III/IV.

Rows are models in the configured order, with their category (zoo category, baseline, or local
pretraining); columns are the AVG and STD of each metric over the test slices. STD is the sample
standard deviation (ddof=1), NaN with a single slice. The best AVG per column (highest or lowest,
depending on the metric) is marked: bold in Markdown and LaTeX, listed in the ``best`` column of
the CSV. For MR->CT the table also carries the per-slice HU metrics (from the 8-bit PNGs); the
whole-volume HU metrics are in ``metrics_volumes`` (:mod:`mrct.evaluation.volumes`).

Every 8-bit metric appears twice: inside the head mask (``*_masked``), which ranks the models, and
over the whole slice, which is comparable with the study's tables but mostly measures the air for
SSIM and UQI (see :mod:`mrct.evaluation.metrics`). The Markdown and LaTeX outputs show them as separate
blocks (:func:`metric_groups`) so that neither is mistaken for the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.evaluation.hu_metrics import HU_METRICS
from mrct.evaluation.metrics import HIGHER_IS_BETTER, IMAGE_METRICS, MASKED_METRICS, MASKED_SUFFIX
from mrct.evaluation.tissue import TISSUE_CLASSES
from mrct.io.atomic import write_text_atomic
from mrct.models.registry import model_info
from mrct.slices.manifest import DIRECTIONS

LABELS = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "uqi": "UQI", "vif": "VIF", "mae": "MAE", "mse": "MSE", "rmse": "RMSE",
    "hu_mae": "Slice MAE (HU)", "hu_psnr": "Slice PSNR (HU, dB)", "hu_ssim": "Slice SSIM (HU)",
    "mae_hu": "Volume MAE (HU)", "psnr_hu": "Volume PSNR (HU, dB)", "ssim_hu": "Volume SSIM (HU)",
    "ms_ssim_hu": "Volume MS-SSIM (HU)",
    **{f"dice_{c}": f"Volume Dice {c}" for c in TISSUE_CLASSES},
    **{f"hd95_{c}_mm": f"Volume HD95 {c} (mm)" for c in TISSUE_CLASSES},
}
LABELS.update({f"{m}{MASKED_SUFFIX}": f"{LABELS[m]} in mask" for m in IMAGE_METRICS})
#: Decimals per metric (2 unless named): slice tables and the volume table share them.
DECIMALS = {"ssim": 4, "uqi": 4, "vif": 4, "hu_ssim": 4, "mae_hu": 1, "ssim_hu": 4, "ms_ssim_hu": 4,
            **{f"dice_{c}": 3 for c in TISSUE_CLASSES}}
DECIMALS.update({f"{m}{MASKED_SUFFIX}": DECIMALS[m] for m in IMAGE_METRICS if m in DECIMALS})
#: Titles of the blocks of a summary table; the masked block comes first because it ranks the models.
GROUP_TITLES = {
    "masked": "8-bit, inside the head mask (ranks the models)",
    "whole": "8-bit, whole slice (comparable with the study; dominated by the air for SSIM and UQI)",
    "hu": "Hounsfield units",
}


def direction_metrics(direction: str) -> list[str]:
    """Metric columns reported for one direction (HU metrics only make sense for MR->CT)."""
    if direction == "ct2mr":
        return [*IMAGE_METRICS, *MASKED_METRICS]
    return [*IMAGE_METRICS, *MASKED_METRICS, *HU_METRICS]


def metric_groups(metrics: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The metrics split into the blocks shown in the tables, as (key of GROUP_TITLES, metrics):
    masked 8-bit first, then whole-slice 8-bit, then the rest (HU); empty blocks left out."""
    masked = [m for m in metrics if m in MASKED_METRICS]
    whole = [m for m in metrics if m in IMAGE_METRICS]
    rest = [m for m in metrics if m not in masked and m not in whole]
    return [(key, members) for key, members in (("masked", masked), ("whole", whole), ("hu", rest)) if members]


def short_label(metric: str) -> str:
    """The label of a metric inside its block (the block's title already says 'in mask')."""
    return LABELS[metric.removesuffix(MASKED_SUFFIX)]


def higher_is_better(metric: str) -> bool:
    return HIGHER_IS_BETTER[metric]


def summarize(slices: pd.DataFrame, models: Sequence[str], direction: str) -> pd.DataFrame:
    """One row per configured model: category, n, AVG/STD of every metric, and the best marks."""
    metrics = direction_metrics(direction)
    records = []
    for model in models:
        own = slices[(slices["model"] == model) & (slices["direction"] == direction)]
        if own.empty:
            raise ValueError(f"metrics of {model!r}: expected {direction} rows, got none")
        missing = [m for m in metrics if m not in own.columns]
        if missing:
            raise ValueError(f"metrics of {model!r}: expected columns {missing} (written by rule evaluate), got none")
        record = {"model": model, "category": model_info(model)["category"], "n_slices": len(own),
                  "n_patients": int(own["patient"].nunique())}
        for metric in metrics:
            values = own[metric].astype(float).dropna()
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
    """Markdown, one block per metric group (:func:`metric_groups`); the best AVG per column in bold.

    Arrows say which way is better.
    """
    lines = [f"### {title}", ""]
    for key, metrics in metric_groups(_metrics_of(table)):
        header = ["Model", "Category", "Slices", "Patients"]
        for m in metrics:
            arrow = "↑" if higher_is_better(m) else "↓"
            header += [f"{short_label(m)} {arrow} AVG", f"{short_label(m)} STD"]
        lines += [f"#### {GROUP_TITLES[key]}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, row in table.iterrows():
            best = set(row["best"].split(";"))
            cells = [row["model"], row["category"], str(row["n_slices"]), str(row["n_patients"])]
            for m in metrics:
                avg = format_value(row[f"{m}_avg"], m)
                cells += [f"**{avg}**" if m in best else avg, format_value(row[f"{m}_std"], m)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _tex_escape(text: str) -> str:
    for char, repl in [("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#")]:
        text = text.replace(char, repl)
    return text


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """Booktabs tables, one per metric group (AVG and STD sub-columns); the best AVG per column in bold.

    The groups' labels are ``{label}_masked``, ``{label}_whole`` and ``{label}_hu``.
    """
    blocks = []
    for key, metrics in metric_groups(_metrics_of(table)):
        lines = [
            r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex_escape(caption)}: {_tex_escape(GROUP_TITLES[key])}}}",
            rf"\label{{{label}_{key}}}",
            r"\begin{tabular}{ll" + "rr" * len(metrics) + "}", r"\toprule",
            "Model & Category & "
            + " & ".join(rf"\multicolumn{{2}}{{c}}{{{_tex_escape(short_label(m))}}}" for m in metrics) + r" \\",
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
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


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
