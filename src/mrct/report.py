"""One self-contained HTML report: every image base64-embedded, no scripts, fonts or URLs loaded.

Written with the standard library (html.escape, base64) rather than a template engine: the page
is a list of sections, and keeping it dependency-free lets it be read offline in any browser.
"""

from __future__ import annotations

import html
import logging
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mrct.evaluation.fid import ranking_fid
from mrct.evaluation.figures import control_and_best
from mrct.evaluation.latent import STAGE_SCORES, separability_change
from mrct.evaluation.forest import DIRECTION_TITLES, RANKING_METRIC, read_significance
from mrct.evaluation.significance import control_of, unit_summary
from mrct.evaluation.tables import (
    GROUP_TITLES,
    LABELS,
    format_value,
    higher_is_better,
    metric_groups,
    short_label,
)
from mrct.io.atomic import write_text_atomic
from mrct.evaluation.volumes import volume_table_cells
from mrct.models.random_embedding import DESCRIPTION
from mrct.preprocess.registration_qa import read_registration_qa, review_order
from mrct.report_images import DEFAULT_QA_PATIENTS, check_size, figure_html, qa_figures_html
from mrct.report_summary import csv_download, direction_key, summary_html

log = logging.getLogger(__name__)

SECTIONS = {
    "summary": "The answer",
    "data": "Data and split",
    "preprocessing": "Preprocessing QA",
    "tables": "Metric tables",
    "volumes": "HU metrics on whole volumes",
    "design": "Study design: runs, replicates, selection",
    "significance": "Significance against the control",
    "fid": "Distribution distance (FID)",
    "figures": "Figures",
    "latent": "Latent space",
    "reader_study": "Reader study",
    "reader_analysis": "Reader study: Tables V and VI",
    "runtimes": "Run times",
    "provenance": "Provenance",
}
PACKAGES = ["mrct", "torch", "numpy", "scipy", "pandas", "scikit-image", "scikit-learn", "umap-learn",
            "torchmetrics", "SimpleITK", "antspyx", "matplotlib", "seaborn", "snakemake"]
CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#eee}img{max-width:100%}.synthetic,.flagged{background:#fdd;border:2px solid #c00;padding:0.5em;font-weight:bold}
nav a{margin-right:1em}figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}pre{background:#f6f6f6;padding:0.5em;overflow:auto}
.answer{font-size:1.05em;border-left:4px solid #2166ac;padding-left:0.6em}.note{font-size:0.85em;color:#555}
details{margin:0.3em 0}summary{cursor:pointer}details.qa{border:1px solid #ddd;padding:0.2em 0.5em}"""


@dataclass
class ReportInputs:
    """Paths of everything the report shows (the ``report`` rule's inputs)."""

    manifest: Path
    metric_tables: dict[str, Path]  # direction -> results/tables/metrics_{direction}.csv
    significance: Path
    replicates: Path | None = None  # results/tables/replicates.csv (seed-to-seed spread), where written
    forest_plots: dict[str, Path] = field(default_factory=dict)  # direction (mr2ct) -> forest plot PNG
    volumes: Path | None = None  # results/tables/metrics_volumes.csv
    qa_images: list[Path] = field(default_factory=list)
    registration_qa: Path | None = None  # results/preprocessed/registration_qa.csv
    figures: list[Path] = field(default_factory=list)
    latent_grid: Path | None = None
    latent_plots: list[Path] = field(default_factory=list)
    latent_joint: list[Path] = field(default_factory=list)  # results/latent/joint_{tsne,umap}.png
    separability: Path | None = None
    benchmark_dir: Path | None = None
    reader_study_key: Path | None = None  # results/reader_study/key.csv (only counts are shown)
    reader_study_screenshots: list[Path] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    alpha: float = 0.05  # evaluate.alpha; the report rule passes the configured value
    fid: Path | None = None  # results/tables/fid.csv
    # table_v, table_vi, classification, agreement, note of rule reader_study_analysis; None: no reader study
    reader_analysis: dict[str, Path] | None = None
    # training.csv, replicates.csv, selection.csv and the design's sentences (mrct.report.design_section)
    design: dict[str, Any] | None = None
    patients: Path | None = None  # results/preprocessed/patients.csv


def image_tag(path: str | Path, caption: str | None = None) -> str:
    """An <img> with the PNG inlined as a data: URI at display size (the report must work with no network)."""
    return figure_html(path, caption if caption is not None else Path(path).stem)


def frame_to_html(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A plain escaped HTML table (no pandas styling, so no CSS classes or scripts creep in)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            text = "" if pd.isna(value) else float_format.format(value) if isinstance(value, float) else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def metric_table_html(table: pd.DataFrame) -> str:
    """A summary table with AVG ± STD per metric and the best AVG in bold, one block per metric group."""
    all_metrics = [c.removesuffix("_avg") for c in table.columns if c.endswith("_avg")]
    blocks = []
    for key, metrics in metric_groups(all_metrics):
        head = "<th>Model</th><th>Category</th><th>Slices</th><th>Patients</th>" + "".join(
            f"<th>{html.escape(short_label(m))} {'↑' if higher_is_better(m) else '↓'}</th>" for m in metrics
        )
        rows = []
        for _, row in table.iterrows():
            best = set(str(row.get("best", "")).split(";"))
            cells = [html.escape(str(row["model"])), html.escape(str(row["category"])), str(row["n_slices"]),
                     str(row.get("n_patients", ""))]
            for m in metrics:
                text = f"{format_value(row[f'{m}_avg'], m)} ± {format_value(row[f'{m}_std'], m)}"
                cells.append(f"<b>{text}</b>" if m in best else text)
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        blocks.append(f"<h4>{html.escape(GROUP_TITLES[key])}</h4>"
                      f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return "".join(blocks)


def ranking_line(table: pd.DataFrame) -> str:
    """The models ordered by mean SSIM inside the head mask, the metric that ranks them."""
    column = f"{RANKING_METRIC}_avg"
    if column not in table.columns:
        return ""
    ranked = table.sort_values(column, ascending=False, kind="stable")
    order = " > ".join(f"{row['model']} ({format_value(row[column], RANKING_METRIC)})" for _, row in ranked.iterrows())
    return f"<p>Ranking by SSIM inside the head mask: {html.escape(order)}</p>"


TABLES_NOTE = (
    "<p>AVG ± STD over test slices (sample STD); best AVG per column in bold. The 8-bit metrics are computed "
    "on 8-bit renderings of the stored 16-bit slices over their stored window (CT [ct_lo_hu, ct_hi_hu], by "
    "default [-1024, 3000] HU, 15.8 HU per gray level; MR its 0.5-99.5 percentiles inside the head). HU "
    "columns: per slice, from the 16-bit slices (0.06 HU per level; whole volumes: next section). "
    "<b>Not directly comparable with the study's Tables III and IV:</b> the study's data are 367 slices of 18 "
    "patients of its reference [2], exported through a DICOM viewer (window unknown), and its \"70 % of the "
    "given dataset\" reads as a split by slice, which puts neighbouring slices of one patient in training and "
    "test; this run uses the configured data set (<code>dataset.source</code>) split by patient (docs/study.md). "
    "<b>The metrics inside the head mask rank the models.</b> The whole-slice values are kept so "
    "that they can be compared with the study's tables, but on a padded slice most of the image is air: "
    "a UQI window that is 0 in both images scores 1 and one that is 0 in the ground truth and 1 in the "
    "prediction scores 0, so a background offset of a single gray level moves whole-slice UQI (and, less, "
    "SSIM) by more than the differences between heads. Inside the mask, PSNR, MAE, MSE and RMSE use the "
    "head's pixels; SSIM and UQI average their maps over the windows centred in the head; VIF keeps its "
    "ratio of information sums over the windows centred in the head.</p>"
)

SIGNIFICANCE_COLUMNS = ["direction", "metric", "model", "control", "n", "mean_difference", "ci_low", "ci_high", "method",
                        "p_value", "p_min_attainable", "p_holm", "rank_biserial", "better", "significant", "note"]


def significance_html(table: pd.DataFrame, alpha: float, csv: Path | None = None) -> str:
    """The unit of analysis and n in words; the per-patient tests (every one, about 650 rows at the
    study's shape: folded away, the forest plots of the summary show the main metrics) and the
    per-slice ones folded away; the table as a CSV download."""
    controls = ", ".join(sorted(set(table["control"].astype(str)))) if "control" in table.columns else "scratch"
    method = (
        "<p>Unit of analysis: <b>the patient</b>. Each metric is averaged over a patient's test slices; the "
        f"per-patient differences to the control ({html.escape(controls)}) are tested with a paired two-sided Wilcoxon signed-rank test "
        "(exact where possible; <i>n</i> = number of test patients; <i>p_min_attainable</i> = the smallest "
        "p-value the test can give for that n), Holm-corrected per direction and metric; the 95 % CI of the "
        "mean difference (model − control) is a patient-level bootstrap (patients resampled with "
        "replacement). Effect size: matched-pairs rank-biserial correlation.</p>"
    )
    sentences = "".join(f"<li>{html.escape(line)}</li>" for line in unit_summary(table, alpha))
    if "unit" not in table.columns or table["unit"].isna().all():
        return method + f"<ul>{sentences}</ul>" + frame_to_html(table)
    patient = table[table["unit"] == "patient"]
    per_slice = table[table["unit"] == "slice"]
    shown = [c for c in SIGNIFICANCE_COLUMNS if c in table.columns]
    download = f"<p>The whole table as CSV: {csv_download(csv, 'significance.csv')}.</p>" if csv is not None else ""
    body = (method + f"<ul>{sentences}</ul>" + "<p>The forest plots of the summary show the main metrics.</p>"
            + download + f"<details><summary>Per-patient tests: all {len(patient)} rows (direction × metric × "
            "model)</summary>" + frame_to_html(patient[shown]) + "</details>")
    if len(per_slice):
        body += ("<details><summary>Per-slice tests (unit = slice; slices of a patient are not independent, "
                 "so these p-values are too small: for comparison only)</summary>"
                 + frame_to_html(per_slice[[c for c in shown if c not in ("ci_low", "ci_high")] + ["n_patients"]])
                 + "</details>")
    return body


VOLUMES_NOTE = (
    "<p>MR → CT per test patient on the whole synthetic CT volume (every axial slice of the registered MR "
    "translated) against the registered CT in float HU, inside the body mask, with the SynthRAD2023 "
    "definitions: MAE unclipped; PSNR and 3-D SSIM after clipping to {clip} HU. MS-SSIM: SynthRAD2025's "
    "masked multi-scale SSIM (five scales, masked mean per scale, on the same clipped range). Tissue overlap: "
    "air, soft tissue and bone of the synthetic and the real CT inside the body mask by the HU thresholds of "
    "<code>evaluate.tissue_hu</code>, compared by Dice and 95th-percentile Hausdorff distance in mm (n/a where "
    "a class is absent, e.g. no air inside the mask). Anatomical labels (TotalSegmentator, as SynthRAD2025 "
    "scores): not computed, neither it nor its weights are part of the pipeline. Mean ± sample STD "
    "over patients (the unit of analysis is the patient). The per-slice HU columns of the metric tables come "
    "from the 16-bit slices instead (windowed, resampled to the slice size, 0.06 HU per level).</p>"
)


def volumes_section(path: Path | None, hu_clip: list[float] | None = None) -> str:
    """The volume table; ``hu_clip`` is ``evaluate.hu_clip``, the clip the PSNR and SSIM columns used."""
    if path is None:
        return "<p>No volume metrics.</p>"
    header, rows = volume_table_cells(pd.read_csv(path))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td><b>{html.escape(t)}</b></td>" if best else f"<td>{html.escape(t)}</td>"
                         for t, best in cells) + "</tr>"
        for cells in rows
    )
    clip = f"[{hu_clip[0]:g}, {hu_clip[1]:g}]" if hu_clip else "the configured range (evaluate.hu_clip)"
    return VOLUMES_NOTE.format(clip=clip) + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def synthetic_banner(manifest: pd.DataFrame) -> str:
    """The warning above everything else, the summary included, when the data are synthetic."""
    synthetic = bool(manifest["synthetic"].astype(bool).any()) if "synthetic" in manifest else False
    return ('<p class="synthetic">SYNTHETIC DEMO DATA: these numbers say nothing about real MR/CT '
            "synthesis.</p>") if synthetic else ""


def data_section(manifest: pd.DataFrame) -> str:
    per_split = (manifest.groupby("split").agg(patients=("patient", "nunique"), slices=("slice", "size"))
                 .reset_index())
    patients = manifest.groupby(["split", "patient"]).size().rename("slices").reset_index()
    return frame_to_html(per_split) + "<details><summary>Slices per patient</summary>" + frame_to_html(patients) + "</details>"


def patients_html(table: pd.DataFrame) -> str:
    """The chosen patients: a count per centre, and the list (patient, centre, source) folded."""
    centres = table["centre"].fillna("").astype(str).replace("", "unknown")
    counts = centres.value_counts().sort_index().rename_axis("centre").rename("patients").reset_index()
    source = html.escape(", ".join(sorted(set(table["source"].astype(str)))))
    return (f"<p>The {len(table)} patients of this run (source {source}), per centre (dataset.patients or "
            "dataset.max_patients in the provenance below: none set means every patient of the source):</p>"
            + frame_to_html(counts) + "<details><summary>Patients and centres</summary>" + frame_to_html(table)
            + "</details>")


REGISTRATION_QA_NOTE = (
    "<p>Inside the MR's field of view on the CT grid. <b>peak_drop</b>: the share of the MR/CT normalised "
    "mutual information (NMI) lost when the MR is moved 4 mm / 4 degrees off the found alignment (a true pair "
    "loses much: the fine anatomy stops matching; another head's MR loses little). <b>nearby_gain</b>: the "
    "best such move's gain in the same units (above 0: the registration stopped short of the best fit). "
    "<b>dice_head</b>: Dice of the MR and CT head masks; <b>nmi</b>: NMI itself (1 = independent images, "
    "2 = identical; its scale depends on the scanner, so it decides nothing unless min_nmi is set); "
    "<b>head_in_fov</b>: the share of the CT head the MR covers. Bounds: preprocess.registration_qa; "
    "docs/running.md says how to set them from your own data.</p>")


def registration_qa_table(table: pd.DataFrame, manifest: pd.DataFrame) -> str:
    """Every patient's registration-QA figures with the decision and why, flagged patients first.

    The decision comes from the manifest, which is what training and evaluation read: a flagged
    patient absent from it was left out, one present was kept on purpose (``keep_flagged``).
    """
    in_manifest = set(manifest["patient"].astype(str))
    patients = table["patient"].astype(str)
    kept = patients.isin(in_manifest).map({True: "kept, flagged (keep_flagged is true)", False: "left out"})
    shown = table.assign(decision=kept.where(table["flagged"], "pass")).sort_values(["flagged", "patient"], ascending=[False, True])
    columns = [c for c in ("patient", "decision", "peak_drop", "nearby_gain", "dice_head", "nmi", "head_in_fov",
                           "reason") if c in shown.columns]
    return frame_to_html(shown[columns]) + REGISTRATION_QA_NOTE


def registration_qa_section(table: pd.DataFrame, manifest: pd.DataFrame) -> str:
    """Who failed registration QA and what became of them, then every patient's figures."""
    in_manifest = set(manifest["patient"].astype(str))
    flagged = table[table["flagged"]]
    status = {p: ("left out" if p not in in_manifest else "kept (keep_flagged is true)") for p in flagged["patient"].astype(str)}
    if len(flagged):
        items = "".join(f"<li><b>{html.escape(str(p))}</b>, {html.escape(status[str(p)])}: {html.escape(str(r))}</li>"
                        for p, r in zip(flagged["patient"], flagged["reason"], strict=True))
        head = (f'<p class="flagged">{len(flagged)} of {len(table)} patients failed registration QA (a mixed-up pair '
                f"or a failed registration: check their QA figures below):</p><ul>{items}</ul>")
    else:
        head = f"<p>All {len(table)} patients passed registration QA.</p>"
    return head + registration_qa_table(table, manifest)


def excluded_section(table: pd.DataFrame, manifest: pd.DataFrame) -> str:
    """Patients with no rows in the manifest because their registration was flagged."""
    left_out = table[table["flagged"] & ~table["patient"].astype(str).isin(set(manifest["patient"].astype(str)))]
    if not len(left_out):
        return ""
    items = "".join(f"<li>{html.escape(str(p))}: {html.escape(str(r))}</li>"
                    for p, r in zip(left_out["patient"], left_out["reason"], strict=True))
    return f"<p>Left out of training and evaluation (registration flagged):</p><ul>{items}</ul>"


def runtime_table(benchmark_dir: Path | None) -> pd.DataFrame:
    """Snakemake benchmark files (columns s, h:m:s, max_rss, ...) as one table, per job."""
    if benchmark_dir is None or not Path(benchmark_dir).is_dir():
        return pd.DataFrame(columns=["job", "s", "max_rss"])
    rows = []
    for path in sorted(Path(benchmark_dir).rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if "s" not in table.columns:
            log.warning("%s: not a Snakemake benchmark file (no column 's'), skipped", path)
            continue
        job = str(path.relative_to(benchmark_dir).with_suffix(""))
        rows.append({"job": job, "s": float(table["s"].mean()),
                     "max_rss": float(table["max_rss"].mean()) if "max_rss" in table else float("nan")})
    return pd.DataFrame(rows, columns=["job", "s", "max_rss"])


def provenance(config: dict[str, Any]) -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            versions.append({"package": name, "version": "not installed"})
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "not a git checkout"
    meta = pd.DataFrame([{"created (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                          "git commit": commit, "python": platform.python_version(), "platform": platform.platform()}])
    return (frame_to_html(meta) + frame_to_html(pd.DataFrame(versions)) + "<h3>Configuration</h3><pre>"
            + html.escape(yaml.safe_dump(config, sort_keys=False)) + "</pre>")


def fid_section(path: Path) -> str:
    """The FID table, which FID ranks the models and its limits; rows without a number carry the
    note that says why (never a made-up value)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if ranking_fid(table) == "fid_inception":
        ranks = ("<b>fid_inception ranks the models</b>: the standard FID (Inception-v3, official weights), "
                 "comparable in kind with published FIDs. fid_random_embedding is shown beside it.")
    else:
        ranks = ("<b>fid_random_embedding ranks the models</b> (no Inception weights, see the notes): the same "
                 "distance in the features of a fixed random-weight network (" + html.escape(DESCRIPTION)
                 + "; per-channel mean and STD of every stage) that no compared model trained or chose. Its "
                 "limits: its scale is its own, not comparable with any Inception or published FID; random "
                 "features measure intensity, edge and texture statistics rather than what a trained network "
                 "recognises; compare it between runs of this code only.")
    return ("<p>Fréchet distance between the features of the ground-truth test slices and of each model's "
            f"outputs (lower is closer). {ranks} Few test slices bias FID upwards: compare models on this "
            "test set only (n_real, n_fake).</p>" + frame_to_html(table))


def reader_analysis_section(paths: dict[str, Path]) -> str:
    """Tables V and VI, the classification and the agreement between readers, or how to run the study."""
    note = html.escape(Path(paths["note"]).read_text(encoding="utf-8").strip())
    table_v = pd.read_csv(paths["table_v"])
    if table_v.empty:
        return f"<p>{note}</p>"
    return (f"<p>{note}</p><h3>Table V: realism (1-4) and images judged real</h3>" + frame_to_html(table_v)
            + "<p>All readers pooled; n = ratings; realism STD is the sample STD.</p>"
            + "<h3>Table VI (the study's): Pearson's r, Lin's C<sub>b</sub> and CCC per reader</h3>"
            + frame_to_html(pd.read_csv(paths["table_vi"]))
            + "<p>Between the realism ratings of each slice's synthetic image and of the same slice's ground "
              "truth: Pearson's r, Lin's bias-correction factor C<sub>b</sub> (<code>ccc_cb</code>) and Lin's "
              "CCC = r &times; C<sub>b</sub>. The study's Table VI calls C<sub>b</sub> \"accuracy\": it says how "
              "close the two series' means and spreads are, not how often a reader was right (a reader rating "
              "at random scores about 1).</p>"
            + "<h3>Real/synthetic classification per reader (not a table of the study)</h3>"
            + frame_to_html(pd.read_csv(paths["classification"]))
            + "<p>Classification accuracy of the real/synthetic judgements (0.5 is chance); sensitivity and "
              "specificity for spotting synthetic images (positive = synthetic).</p>"
            + "<h3>Agreement between readers</h3>" + frame_to_html(pd.read_csv(paths["agreement"]))
            + "<p>Cohen's kappa on real/synthetic; Cohen's kappa with quadratic weights on realism.</p>")


LATENT_NOTE = (
    "<p>Features: the per-channel mean and standard deviation of each generator's bottleneck (output of "
    "the last residual block, or of the adapter), per test slice. The global average alone would equal "
    "the encoder's: instance norm zeroes the mean of every residual branch. k-NN modality accuracy is "
    "cross-validated with folds grouped by patient (<code>cv_groups</code> patients, "
    "<code>cv_folds</code> folds; NaN with a note when there are fewer than 2 patients). The joint "
    "embedding places every (model, slice) by the slice's distance profile under that model, because the "
    "channels of different networks do not correspond.</p>"
    "<p><b>Read the change, not the raw score.</b> A generator with random weights already separates MR "
    "from CT inputs (the modalities differ in intensity statistics, which any network passes on), so every "
    "score is also computed for a random-weight generator of the same architecture (<code>random</code>) "
    "and for the start of fine-tuning (<code>pretrained</code>: the weights as downloaded, or a model's "
    "seeded initial weights when it starts at random). <code>change_finetuning</code> = fine-tuned minus "
    "pretrained is what fine-tuning did to the separation; <code>finetuned_vs_random</code> compares the "
    "result with a network that learnt nothing. The per-model plots show the three stages, one row each.</p>"
)


#: Models beside the control in the figures, when the config does not say (``evaluate.n_figure_models``).
DEFAULT_FIGURE_MODELS = 4


def latent_section(inputs: ReportInputs, metric_tables: Iterable[pd.DataFrame] = ()) -> str:
    """The change that fine-tuning made to separability, the raw table, joint embeddings, then the
    per-model grid and the plots of the models :func:`latent_plot_models` picks from ``metric_tables``."""
    latent = [LATENT_NOTE]
    if inputs.separability is not None:
        table = pd.read_csv(inputs.separability)
        if {"stage", *STAGE_SCORES} <= set(table.columns):
            latent.append("<h3>What fine-tuning changed</h3>" + frame_to_html(separability_change(table)))
        latent.append("<details><summary>Every score at every stage</summary>" + frame_to_html(table) + "</details>")
    latent += [image_tag(p, f"All models together: {p.stem}") for p in inputs.latent_joint]
    if inputs.latent_grid is not None:
        latent.append(image_tag(inputs.latent_grid, "t-SNE and UMAP of every fine-tuned model"))
    n_best = int(inputs.config.get("evaluate", {}).get("n_figure_models", DEFAULT_FIGURE_MODELS))
    shown, ranked = latent_plot_models(metric_tables, (inputs.design or {}).get("control"), n_best)
    model_of = {p: latent_plot_model(p) for p in inputs.latent_plots}
    plots = [p for p, model in model_of.items() if model in shown or model not in ranked]
    if len(plots) < len(inputs.latent_plots):
        latent.append(f"<p>Per-model plots of {len(shown)} of the {len(set(model_of.values()))} models: the control "
                      f"and the {n_best} best by {html.escape(LABELS.get(RANKING_METRIC, RANKING_METRIC))} in each "
                      "direction, as in the translation figures (the grid above shows every model; every model's "
                      "plots are results/latent/&lt;model&gt;_tsne.png and _umap.png, and all are in "
                      "<code>snakemake --report</code>).</p>")
    latent += [image_tag(p) for p in plots]
    return "".join(latent)


def latent_plot_model(path: str | Path) -> str:
    """The model of a per-model latent plot, ``results/latent/{model}_{tsne,umap}.png``."""
    return Path(path).stem.rsplit("_", 1)[0]


def latent_plot_models(metric_tables: Iterable[pd.DataFrame], control: str | None,
                       n_best: int) -> tuple[set[str], set[str]]:
    """The models whose own latent plots the report shows, and the models ranked.

    Shown: the control and the ``n_best`` (``evaluate.n_figure_models``) best by the ranking metric
    in each direction, chosen as the translation figures choose theirs
    (:func:`mrct.evaluation.figures.control_and_best`). A model the metric tables do not rank is not
    left out. Why: each model adds two plots of about 0.2 MB, and the grid shows every model already.
    """
    shown, ranked = set(), set()
    for table in metric_tables:
        if f"{RANKING_METRIC}_avg" not in table.columns:
            continue
        means = table.set_index(table["model"].astype(str))[f"{RANKING_METRIC}_avg"]
        ranked |= set(means.index)
        shown |= set(control_and_best(means, control, n_best))
    return shown, ranked


#: Captions of the screenshots in docs/img/ (tests/test_reader_study_browser.py makes them).
SCREENSHOT_CAPTIONS = {
    "reader_study_1_start": "the first image, nothing answered yet",
    "reader_study_2_answering": "answering with the keyboard (R/S, 1-4); the progress bar fills",
    "reader_study_3_changed": "back at an earlier image, its answer changed, after a reload",
}


def reader_study_counts(key: pd.DataFrame) -> pd.DataFrame:
    """Per direction: the model shown, slices drawn, images, ground-truth and synthetic images."""
    return (key.groupby(["direction", "model"])
            .agg(slices=("slice", lambda s: len(s) // 2), images=("image_id", "size"),
                 ground_truth=("truth", lambda t: int((t == "real").sum())),
                 synthetic=("truth", lambda t: int((t == "synthetic").sum())))
            .reset_index())


def reader_study_kit_html(key: Path | None, screenshots: list[Path],
                          answers_dir: str = "data/reader_study") -> str:
    """How to run the blinded reader study, what the questionnaire holds, and how it looks.

    Only counts and the model per direction come from the key: the report may be read by the
    readers, so which image is which never appears here.
    """
    if key is None or not Path(key).is_file():
        return "<p>No reader-study questionnaire was made (rule <code>reader_study</code>).</p>"
    table = pd.read_csv(key)
    counts = reader_study_counts(table)
    steps = (
        "<ol><li>Give each reader <code>results/reader_study/questionnaire.html</code> (one file: it "
        "opens in any browser, from a USB stick, with no network).</li>"
        "<li>The reader types their name, then judges every image: <b>R</b>/<b>S</b> for real or "
        "synthetic, <b>1</b>-<b>4</b> for realism, arrows to move. Answers are kept in the browser, "
        "so the page can be closed and resumed.</li>"
        "<li>At the end the reader presses <i>Export answers</i> and hands in the CSV file "
        "(<code>reader,image_id,judged,realism</code>).</li>"
        f"<li>Put every answers file in <code>{html.escape(answers_dir)}/</code> and run the workflow "
        "again: the analysis joins them with the key "
        "(<code>results/reader_study/key.csv</code>, never shown to readers).</li></ol>"
    )
    shots = "".join(image_tag(p, "The questionnaire: " + SCREENSHOT_CAPTIONS.get(Path(p).stem, Path(p).stem))
                    for p in screenshots)
    return (f"<p>{len(table)} images in random order; every slice is shown twice, once as ground truth and "
            "once as the model's output, far apart.</p>" + frame_to_html(counts) + steps + shots)


def design_summary(design: dict[str, Any]) -> str:
    """The design in one paragraph: folds, replicates, training-set sizes, control, pooling."""
    folds, replicates = int(design["folds"]), int(design["replicates"])
    text = ("One train/test split by patient (split.train_fraction); " if folds == 1 else
            f"Patient-level {folds}-fold cross-validation: every patient is tested exactly once, and every "
            "table and test pools the out-of-fold results; ")
    text += (f"each model was trained {replicates} times per fold with different seeds (train.replicates); tables "
             "show the mean over replicates. " if replicates > 1 else "one training per model and fold (one seed). ")
    if design.get("train_sizes"):
        text += (f"Smaller training sets {list(design['train_sizes'])} (nested subsets) feed the learning curve "
                 "only; everything else uses the full training set. ")
    text += (f"The significance tests compare every model with {design['control']}. "
             "FID, the whole-volume HU metrics, the figures and the reader study use the out-of-fold "
             "predictions of replicate 0 on the full training set; the latent space the generators of fold 0, "
             "replicate 0, on that fold's test patients.")
    if design["control"] == "random_init":
        text += (" random_init has the zoo models' networks and training (strategy, frozen layers, adapters, "
                 "learning rate and schedule) and differs from them only in its random start: the comparison "
                 "with it isolates pretraining. scratch trains every layer from random weights at the network "
                 "section's width, so a difference to it mixes pretraining with capacity and optimisation.")
    return text


def design_section(design: dict[str, Any]) -> str:
    """What was trained (one row per model and run), the seed-to-seed spread beside each model's
    difference to the control, and on which patients the reader study's model was chosen."""
    selection = pd.read_csv(design["selection_table"], dtype={"patients": str}, keep_default_na=False)
    replicates = pd.read_csv(design["replicates_table"])
    parts = [f"<p>{html.escape(design_summary(design))}</p>",
             "<h3>Reader study model: chosen on the selection patients, never shown to the readers</h3>",
             frame_to_html(selection)]
    control = design.get("control")
    if control and not replicates.empty:
        own = replicates.set_index(["direction", "metric", "model"])
        rows = []
        for (direction, metric, model), row in own.iterrows():
            if model == control or (direction, metric, control) not in own.index:
                continue
            rows.append({"direction": direction, "metric": metric, "model": model,
                         f"mean - {control}": row["mean"] - own.loc[(direction, metric, control), "mean"],
                         "sd between replicates (model)": row["sd_between_replicates"],
                         f"sd between replicates ({control})": own.loc[(direction, metric, control),
                                                                       "sd_between_replicates"]})
        parts += [f"<h3>Difference to {html.escape(control)} beside the seed-to-seed spread</h3>",
                  "<p>A difference smaller than the spread between replicate seeds of one model is not a "
                  "difference between models (n/a with one replicate).</p>"]
        parts.append(frame_to_html(pd.DataFrame(rows)) if rows else "<p>Only the control was trained.</p>")
    if design.get("learning_curve") is not None:
        parts.append(image_tag(design["learning_curve"], "learning curve (results/tables/learning_curve.csv)"))
    parts += ["<details><summary>Every training run (results/tables/training.csv)</summary>",
              frame_to_html(pd.read_csv(design["training_table"])), "</details>"]
    return "".join(parts)


def build_report(inputs: ReportInputs) -> str:
    """The full HTML page as a string."""
    manifest = pd.read_csv(inputs.manifest)
    forest = {direction_key(d): image_tag(p, f"Forest plot, {DIRECTION_TITLES[direction_key(d)]}: each model's "
                                             "difference to the control (see Significance for the method)")
              for d, p in inputs.forest_plots.items()}
    body: dict[str, str] = {
        "summary": summary_html(inputs.metric_tables, inputs.significance, inputs.replicates, forest, inputs.alpha),
        "data": data_section(manifest),
    }
    if inputs.patients is not None:
        # Centres are letters, empty where unknown: read as text, not as NaN.
        body["data"] += patients_html(pd.read_csv(inputs.patients, dtype=str, keep_default_na=False))
    registration, flagged, review = "", {}, None
    if inputs.registration_qa is not None:
        qa = read_registration_qa(inputs.registration_qa)
        body["data"] += excluded_section(qa, manifest)
        registration = registration_qa_section(qa, manifest)
        flagged = dict(zip(qa.loc[qa["flagged"], "patient"].astype(str), qa.loc[qa["flagged"], "reason"].astype(str),
                           strict=True))
        review = review_order(qa, inputs.config.get("preprocess", {}).get("registration_qa", {}))
    qa_limit = inputs.config.get("report", {}).get("qa_patients", DEFAULT_QA_PATIENTS)
    body["preprocessing"] = (registration + qa_figures_html(inputs.qa_images, flagged, "bias field and registration QA",
                                                            review, qa_limit) or "<p>No QA images.</p>")
    metric_tables = {direction: pd.read_csv(path) for direction, path in inputs.metric_tables.items()}
    body["tables"] = "".join(
        f"<h3>{html.escape(direction)}</h3>" + ranking_line(table) + metric_table_html(table)
        for direction, table in metric_tables.items()
    ) + TABLES_NOTE
    body["volumes"] = volumes_section(inputs.volumes, inputs.config.get("evaluate", {}).get("hu_clip"))
    significance = read_significance(inputs.significance)
    body["significance"] = significance_html(significance, inputs.alpha, inputs.significance)
    if inputs.design is not None:
        body["design"] = design_section(inputs.design)
    if inputs.fid is not None:
        body["fid"] = fid_section(inputs.fid)
    if inputs.reader_analysis is not None:
        body["reader_analysis"] = reader_analysis_section(inputs.reader_analysis)
    body["figures"] = "".join(image_tag(p) for p in inputs.figures) or "<p>No figures.</p>"
    body["latent"] = latent_section(inputs, metric_tables.values())
    body["reader_study"] = reader_study_kit_html(inputs.reader_study_key, inputs.reader_study_screenshots)
    runtimes = runtime_table(inputs.benchmark_dir)
    body["runtimes"] = frame_to_html(runtimes) if len(runtimes) else "<p>No benchmark files found.</p>"
    body["provenance"] = provenance(inputs.config)
    titles = {**SECTIONS, "significance": f"Significance against {control_of(significance)}"}
    shown = {key: title for key, title in titles.items() if key in body}
    nav = "".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in shown.items())
    sections = "".join(
        f'<section id="{key}"><h2>{html.escape(title)}</h2>{body[key]}</section>' for key, title in shown.items()
    )
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mrct report</title>'
            f"<style>{CSS}</style></head><body><h1>mrct: MR ↔ CT synthesis report</h1>{synthetic_banner(manifest)}"
            f"<nav>{nav}</nav>{sections}</body></html>\n")


def write_report(inputs: ReportInputs, target: str | Path) -> None:
    page = build_report(inputs)
    write_text_atomic(target, page)
    log.info("report written to %s (%.1f MB)", target, check_size(page))
