"""The package's shape: stages import only the stages below them, and the map in docs is true.

docs/architecture.md is the one-screen map (stage -> rule file -> package -> outputs). These
tests keep it honest: every rule of the workflow is on the map and every rule on the map
exists, so a renamed or deleted rule fails here; and no module imports a stage above its own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mrct"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: What each part of the package may import (besides itself). Inference uses the models, never
#: training; evaluation reads inference's outputs (files), never its internals.
MAY_IMPORT: dict[str, set[str]] = {
    "io": set(),
    "config": set(),
    "sources": {"io"},
    "preprocess": {"io"},
    "slices": {"io"},
    "models": {"io"},
    "training": {"io", "slices", "models"},
    "inference": {"io", "slices", "models"},
    "evaluation": {"io", "slices", "models"},
    "reader_study": {"io", "slices", "models", "evaluation"},
    # The report also shows preprocessing's registration QA table (read by its one reader).
    "report": {"io", "preprocess", "slices", "models", "evaluation", "reader_study"},
}
# The report's modules beside report.py (its summary, its images) are on the report's layer.
MAY_IMPORT.update({name: MAY_IMPORT["report"] for name in ("report_summary", "report_images")})
MAY_IMPORT["report"] = MAY_IMPORT["report"] | {"report_summary", "report_images"}


def _part(module_path: Path) -> str:
    relative = module_path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imported_parts(module_path: Path) -> set[str]:
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    parts = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith("mrct."):
                parts.add(name.split(".")[1])
    return parts


def _modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py" or p.parent != PACKAGE]


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_dag(module: Path) -> None:
    part = _part(module)
    assert part in MAY_IMPORT, f"{module}: part {part!r} of the package is not on the layer map of this test"
    upward = _imported_parts(module) - MAY_IMPORT[part] - {part}
    assert not upward, f"{module} ({part}) imports {sorted(upward)}, which it may not"


def _workflow_rules() -> set[str]:
    pattern = re.compile(r"^[ \t]*(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)  # conditional rules are indented
    files = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
    return {name for f in files for name in pattern.findall(f.read_text(encoding="utf-8"))} - {"all"}


def _mapped_rules() -> set[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    return set(re.findall(r"`rule (\w+)`", text))


def test_every_rule_is_on_the_architecture_map_and_every_mapped_rule_exists() -> None:
    rules, mapped = _workflow_rules(), _mapped_rules()
    assert rules, "no rule found in Snakefile and rules/*.smk"
    assert not mapped - rules, f"docs/architecture.md names rules the workflow does not have: {sorted(mapped - rules)}"
    assert not rules - mapped, f"rules missing from docs/architecture.md: {sorted(rules - mapped)}"


def test_every_package_path_on_the_map_exists() -> None:
    paths = re.findall(r"`(src/mrct/[\w/.]+|rules/\w+\.smk|scripts/\w+\.py)`", ARCHITECTURE.read_text(encoding="utf-8"))
    assert paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
