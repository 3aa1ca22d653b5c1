"""Rules reader_study_analysis and fid in the workflow, on a tiny config (a few Snakemake calls).

The key is placed by the test (``--allowed-rules`` keeps Snakemake from asking the questionnaire
kit's rule for it), so the analysis rule runs alone: with no answers, then with answers added
(the answers folder is globbed when the DAG is built), then with a bad answers file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py

from test_reader_analysis import make_key, simulate

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow
TABLES = ["results/reader_study/table_v.csv", "results/reader_study/table_vi.csv",
          "results/reader_study/classification.csv"]


def _analysis(workdir: Path, check: bool = True):
    return tw.snakemake(workdir, "--cores", "1", *TABLES, "--allowed-rules", "reader_study_analysis", check=check)


def test_analysis_rule_without_then_with_answers(tmp_path: Path) -> None:
    workdir = tw.write_workdir(tmp_path / "work", tw.tiny_config())
    (workdir / "results" / "reader_study").mkdir(parents=True)
    key_path = make_key(workdir / "results" / "reader_study")

    _analysis(workdir)
    note = (workdir / "results/reader_study/analysis_note.md").read_text()
    assert "No reader-study answers found in data/reader_study/" in note
    assert pd.read_csv(workdir / TABLES[0]).empty

    key = pd.read_csv(key_path, dtype=str)
    answers = workdir / "data" / "reader_study"
    answers.mkdir(parents=True)
    for name in ("A", "B"):
        pd.DataFrame(simulate(key, name, lambda r: r.truth, lambda r: 3)).to_csv(answers / f"{name}.csv", index=False)
    _analysis(workdir)  # a new answers file changes the input set: the analysis reruns
    table_vi = pd.read_csv(workdir / TABLES[1])
    assert set(table_vi["reader"]) == {"A", "B"} and list(table_vi.columns)[2:5] == ["pearson", "ccc_cb", "ccc"]
    classes = pd.read_csv(workdir / TABLES[2])
    assert set(classes["reader"]) == {"A", "B"} and (classes["classification_accuracy"] == 1).all()
    assert "2 reader(s)" in (workdir / "results/reader_study/analysis_note.md").read_text()

    pd.DataFrame(simulate(key, "C", lambda r: "maybe", lambda r: 3)).to_csv(answers / "C.csv", index=False)
    result = _analysis(workdir, check=False)
    log = (workdir / "logs/reader_study/analysis.log").read_text()
    assert result.returncode != 0
    assert "C.csv: column judged must be real or synthetic, got maybe" in log


def test_fid_plans_the_inception_download_only_when_asked(tmp_path: Path) -> None:
    offline = tw.write_workdir(tmp_path / "off", tw.tiny_config())
    jobs = {job.rule for job in tw.dry_run(offline, "results/tables/fid.csv")}
    assert "fid" in jobs and "download_inception" not in jobs
    online = tw.write_workdir(tmp_path / "on", tw.tiny_config(fid={"download_inception": True}))
    jobs = {job.rule for job in tw.dry_run(online, "results/tables/fid.csv")}
    assert {"fid", "download_inception"} <= jobs


def test_report_asks_for_the_kit_and_the_analysis(tmp_path: Path) -> None:
    """With the questionnaire kit's rule in the workflow, the report depends on the key (the kit
    section) and on the reader-study tables (the analysis section)."""
    workdir = tw.write_workdir(tmp_path / "work", tw.tiny_config())
    result = tw.snakemake(workdir, "--dry-run", "--cores", "1", "results/report.html")
    assert "rule reader_study_analysis:" in result.stdout and "rule reader_study:" in result.stdout
    report_block = result.stdout[result.stdout.index("rule report:"):]
    report_inputs = report_block.split("output:")[0]
    assert "results/reader_study/table_vi.csv" in report_inputs and "results/reader_study/key.csv" in report_inputs
    assert "results/reader_study/classification.csv" in report_inputs
