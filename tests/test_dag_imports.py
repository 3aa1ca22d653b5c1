"""Building the DAG imports no torch: every Snakemake call (a dry run, each cluster job's own parse
of the workflow) would otherwise pay about 2 s for it."""

from __future__ import annotations

import re
import subprocess
import sys

import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py

HEAVY = ("torch", "torchmetrics", "umap", "matplotlib")


def test_a_dry_run_imports_no_torch(tmp_path) -> None:
    workdir = tw.write_workdir(tmp_path, tw.tiny_config())
    cmd = [sys.executable, "-X", "importtime", "-m", "snakemake", "-s", str(tw.SNAKEFILE), "-d", str(workdir),
           "--dry-run", "--cores", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tw.ROOT, check=True)
    # -X importtime writes one line per imported module to stderr: "import time: self | cumulative | name".
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "snakemake" in imported and "mrct.config" in imported, "the import log was not read"
    assert "rule train" in result.stdout or re.search(r"\btrain\b", result.stdout), result.stdout[-2000:]
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
