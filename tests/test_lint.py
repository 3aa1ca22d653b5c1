"""Lint gates of the workflow: ``snakemake --lint`` and ``snakefmt --check`` must be clean.

Run from the repository root as CI does; both are the tools' own checks, nothing re-implemented.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean() -> None:
    result = _run(sys.executable, "-m", "snakemake", "--lint", "--cores", "1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Lints for" not in output, output[-5000:]


def test_snakefmt_check_is_clean() -> None:
    snakefmt = shutil.which("snakefmt")
    assert snakefmt, "snakefmt is not installed (pip install -e .[test])"
    result = _run(snakefmt, "--check", "--diff", ".")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
