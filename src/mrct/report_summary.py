"""The answer first: per direction, the models ranked, each with its difference to the control.

The study asks which pretrained start beats the control, by how much, and with what certainty.
The answer is spread over the metric tables (the ranking), the significance table (differences,
CIs, p-values; about 650 rows at the study's shape) and the replicates table (seed-to-seed
spread). This module puts it in one place at the top of the report: one ranked table and one
forest plot per direction, and a sentence that says what can and cannot be concluded with the
number of test patients there are. The full significance table stays, folded away and as CSV.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mrct.evaluation.forest import (
    DIRECTION_TITLES,
    RANKING_METRIC,
    direction_metrics,
    forest_rows,
    oriented,
    read_replicates,
    read_significance,
)
from mrct.evaluation.tables import LABELS, format_value

QUESTION = ("<p>The question: which start beats the control, by how much, and with what certainty? Per "
            "direction, the models ranked by {label} (mean over test slices), each with its mean per-patient "
            "difference to its control, the 95 % patient-level bootstrap CI, the paired Wilcoxon p-value over "
            "patients (raw and Holm-corrected across models) and n, the number of test patients.</p>")


def direction_key(name: str) -> str:
    """``mr2ct`` for ``mr2ct`` or its title ``MR → CT`` (the report's tables are keyed by either)."""
    if name in DIRECTION_TITLES:
        return name
    for key, title in DIRECTION_TITLES.items():
        if name == title:
            return key
    raise ValueError(f"direction {name!r}: expected one of {list(DIRECTION_TITLES)} or {list(DIRECTION_TITLES.values())}")


def ranked_models(metric_table: pd.DataFrame, metric: str = RANKING_METRIC) -> pd.DataFrame:
    """The metric table's rows, best first by ``metric``'s AVG (stable: the configured order breaks ties)."""
    column = f"{metric}_avg"
    if column not in metric_table.columns:
        raise ValueError(f"metric table: expected a column {column!r} (the ranking metric), got {list(metric_table.columns)}")
    ascending = not oriented([1.0], metric)[0] > 0
    return metric_table.sort_values(column, ascending=ascending, kind="stable", na_position="last").reset_index(drop=True)


def summary_rows(metric_table: pd.DataFrame, significance: pd.DataFrame, replicates: pd.DataFrame | None,
                 direction: str) -> pd.DataFrame:
    """One row per model in ranking order: its mean, and its test against the control on each forest metric.

    Columns: rank, model, mean (the ranking metric), control, and per forest metric m:
    ``{m}:difference``, ``{m}:ci_low``, ``{m}:ci_high``, ``{m}:p_value``, ``{m}:p_holm``, ``{m}:n``,
    ``{m}:significant``; ``seed_sd`` and ``n_replicates`` of the ranking metric (NaN without a
    replicates table row).
    """
    ranked = ranked_models(metric_table)
    metrics = direction_metrics(significance, direction) or [RANKING_METRIC]
    tests = forest_rows(significance, replicates, direction, metrics)
    records = []
    for rank, row in enumerate(ranked.itertuples(index=False), start=1):
        model = str(row.model)
        record = {"rank": rank, "model": model, "mean": getattr(row, f"{RANKING_METRIC}_avg"), "control": ""}
        own = tests[tests["model"].astype(str) == model]
        for metric in metrics:
            test = own[own["metric"] == metric]
            if test.empty:
                continue
            first = test.iloc[0]
            record["control"] = record["control"] or str(first["control"])
            record.update({f"{metric}:difference": first["mean_difference"], f"{metric}:ci_low": first["ci_low"],
                           f"{metric}:ci_high": first["ci_high"], f"{metric}:p_value": first["p_value"],
                           f"{metric}:p_holm": first["p_holm"], f"{metric}:n": first["n"],
                           f"{metric}:significant": bool(first["significant"])})
        records.append(record)
    table = pd.DataFrame.from_records(records)
    table["seed_sd"], table["n_replicates"] = math.nan, math.nan
    if replicates is not None:  # the control's own spread too
        own = replicates[(replicates["direction"] == direction) & (replicates["metric"] == RANKING_METRIC)]
        spread = own.drop_duplicates("model").set_index("model")
        table["seed_sd"] = table["model"].map(spread["sd_between_replicates"])
        table["n_replicates"] = table["model"].map(spread["n_replicates"])
    return table


def _controls(rows: pd.DataFrame) -> list[str]:
    return sorted({c for c in rows["control"].astype(str) if c})


def conclusion(rows: pd.DataFrame, significance: pd.DataFrame, direction: str, alpha: float) -> str:
    """One or two sentences: what the ranking metric's tests allow at this n, and what they do not."""
    label = LABELS.get(RANKING_METRIC, RANKING_METRIC)
    tested = rows.dropna(subset=[f"{RANKING_METRIC}:n"]) if f"{RANKING_METRIC}:n" in rows else rows.iloc[0:0]
    if tested.empty:
        notes = "; ".join(sorted({str(n) for n in significance.get("note", pd.Series(dtype=str)).dropna() if str(n)}))
        return f"No model was tested against a control in this direction{f' ({notes})' if notes else ''}: the ranking is descriptive only."
    n_values = sorted({int(n) for n in tested[f"{RANKING_METRIC}:n"]})
    n_text = ", ".join(map(str, n_values))
    controls = " / ".join(_controls(tested)) or "the control"
    p_min = _p_min(significance, direction, min(n_values))
    if p_min >= alpha:
        return (f"With n = {n_text} test patients the smallest p-value the paired test can reach is {p_min:.3g}, not "
                f"below α = {alpha}: no model can be shown to differ from {controls}, whatever the data. The ranking "
                "is descriptive, and a bootstrap CI over so few patients is too narrow: read nothing into it beyond "
                "the direction of the differences.")
    significant = tested[f"{RANKING_METRIC}:significant"].astype(bool)
    effect = oriented(tested[f"{RANKING_METRIC}:difference"], RANKING_METRIC)
    better, worse = int((significant & (effect > 0)).sum()), int((significant & (effect <= 0)).sum())
    rest = len(tested) - better - worse
    widths = (tested[f"{RANKING_METRIC}:ci_high"] - tested[f"{RANKING_METRIC}:ci_low"]).dropna()
    width = f"{widths.median():.2g}" if len(widths) else "n/a"
    text = (f"At n = {n_text} test patients, {better} of {len(tested)} models are better than {controls} on {label} "
            f"after Holm correction (α = {alpha}) and {worse} worse; the other {rest} cannot be told apart from "
            f"{controls} at this n (median 95 % CI width {width}), so their order in the ranking is not established.")
    spread = tested["seed_sd"].dropna()
    if len(spread):
        differences = pd.Series(abs(effect)).median()
        text += (f" Retraining with another seed moves {label} by a median SD of {spread.median():.2g}, against a "
                 f"median |difference| to the control of {differences:.2g}.")
    else:
        text += " Each model was trained once: how much a difference depends on the training seed is not measured."
    return text + " The conclusions hold for patients like these test patients, not beyond their dataset."


def _p_min(significance: pd.DataFrame, direction: str, n: int) -> float:
    """The smallest attainable p-value the table states for this direction, else 2 / 2^n (exact test)."""
    if "p_min_attainable" in significance.columns:
        own = significance[(significance["direction"] == direction) & (significance["unit"] == "patient")
                           & (significance["metric"] == RANKING_METRIC)]["p_min_attainable"].dropna()
        if len(own):
            return float(own.min())
    return 2.0 / 2**n if n > 0 else 1.0


def _p(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.3g}"


def _difference(row: pd.Series, metric: str) -> str:
    key = f"{metric}:difference"
    if key not in row or pd.isna(row[key]):
        return ""
    text = (f"{format_value(row[key], metric)} [{format_value(row[f'{metric}:ci_low'], metric)}, "
            f"{format_value(row[f'{metric}:ci_high'], metric)}]")
    return f"<b>{html.escape(text)}</b>" if row[f"{metric}:significant"] else html.escape(text)


def summary_table_html(rows: pd.DataFrame, metrics: list[str]) -> str:
    """The ranked table: the ranking metric in full, the other forest metrics as difference [CI]."""
    several_controls = len(_controls(rows)) > 1
    control = _controls(rows)[0] if _controls(rows) else "control"
    label = html.escape(LABELS.get(RANKING_METRIC, RANKING_METRIC))
    head = ["#", "Model", f"{label} ↑"]
    head += ["Control"] if several_controls else []
    head += [f"Δ {label} [95 % CI]" if not several_controls else f"Δ {label} to control [95 % CI]",
             "p", "p (Holm)", "n"]
    with_seeds = rows["seed_sd"].notna().any()
    head += ["seed SD (seeds)"] if with_seeds else []
    others = [m for m in metrics if m != RANKING_METRIC]
    head += [f"Δ {html.escape(LABELS.get(m, m))} {'↑' if oriented([1.0], m)[0] > 0 else '↓'} [95 % CI]" for m in others]
    body = []
    for _, row in rows.iterrows():
        is_control = row["model"] in set(rows["control"]) and pd.isna(row.get(f"{RANKING_METRIC}:difference"))
        cells = [str(row["rank"]), html.escape(str(row["model"])) + (" <i>(control)</i>" if is_control else ""),
                 html.escape(format_value(row["mean"], RANKING_METRIC))]
        cells += [html.escape(str(row["control"]))] if several_controls else []
        if is_control or pd.isna(row.get(f"{RANKING_METRIC}:difference", math.nan)):
            cells += ["control" if is_control else "not tested", "", "", ""]
        else:
            cells += [_difference(row, RANKING_METRIC), _p(row[f"{RANKING_METRIC}:p_value"]),
                      _p(row[f"{RANKING_METRIC}:p_holm"]), str(int(row[f"{RANKING_METRIC}:n"]))]
        if with_seeds:
            cells.append("" if pd.isna(row["seed_sd"]) else
                         f"{format_value(row['seed_sd'], RANKING_METRIC)} ({int(row['n_replicates'])})")
        cells += [_difference(row, m) for m in others]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return (f'<table class="summary"><thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f"<p class=\"note\">Δ = model − {html.escape(control) if not several_controls else 'its control'}, "
            "mean over test patients of the per-patient means; bold: significant after Holm correction.</p>")


def summary_html(metric_tables: Mapping[str, Path], significance_path: Path, replicates_path: Path | None,
                 forest_images: Mapping[str, str], alpha: float) -> str:
    """The summary section: the question, then per direction the sentence, the ranked table and the forest plot.

    ``forest_images`` maps a direction key (``mr2ct``) to the figure's HTML (an inline image).
    """
    significance = read_significance(significance_path)
    replicates = read_replicates(replicates_path)
    parts = [QUESTION.format(label=html.escape(LABELS.get(RANKING_METRIC, RANKING_METRIC)))]
    for name, path in metric_tables.items():
        direction = direction_key(name)
        rows = summary_rows(pd.read_csv(path), significance, replicates, direction)
        metrics = direction_metrics(significance, direction) or [RANKING_METRIC]
        parts.append(f'<h3 id="summary-{direction}">{html.escape(DIRECTION_TITLES[direction])}</h3>'
                     f'<p class="answer">{html.escape(conclusion(rows, significance, direction, alpha))}</p>'
                     + summary_table_html(rows, metrics) + forest_images.get(direction, ""))
    return "".join(parts)


def csv_download(path: Path, name: str) -> str:
    """A link that saves the CSV from a data: URI (the report loads nothing from elsewhere)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<a download="{html.escape(name)}" href="data:text/csv;base64,{data}">{html.escape(name)}</a>'
