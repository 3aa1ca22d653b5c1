"""Static checks of envs/*.yaml against the rules, their scripts and pyproject.toml.

Conda cannot run here, so these tests make the environments as hard to get wrong as a
static look allows: every rule that does work names an environment; every environment pins
every dependency exactly; the environment a rule names provides every third-party module
its script imports, directly or through the mrct modules it imports (followed transitively
with ``ast``); and the pins agree with pyproject.toml's.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
PACKAGE = ROOT / "src" / "mrct"
# The line that installs this package itself into each environment (see envs/data.yaml).
SELF_INSTALL = "-e ../.."
# Modules the Snakemake runtime puts on sys.path of every script (its script preamble).
RUNTIME_MODULES = {"snakemake"}
# The environment each kind of rule runs in (the rule names are fixed by the design).
EXPECTED_ENV = {
    **dict.fromkeys(
        ["make_demo_patient", "download_dataset", "unpack_dataset", "bias_correct",
         "register", "extract_slices", "split"], "data.yaml"),
    **dict.fromkeys(
        ["pretrain_photos", "train", "predict", "translate_volume", "latent"], "torch.yaml"),
    **dict.fromkeys(["evaluate", "evaluate_volumes", "tables", "tables_volumes", "figures", "report"],
                    "report.yaml"),
}

RULE_HEADER = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
DIRECTIVE = re.compile(r"^ {4}(conda|script|shell|run|notebook|wrapper)\s*:(.*)$")
ACTIONS = {"script", "shell", "run", "notebook", "wrapper"}


def _rule_body(text: str) -> list[str]:
    """The lines of a rule, up to the next line that is neither indented, blank nor a comment."""
    lines = []
    for line in text.splitlines()[1:]:
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            break
        lines.append(line)
    return lines


def parse_rules() -> dict[str, dict[str, str]]:
    """Rule name -> {"file", "conda", "script", "action"} from the Snakefile and rules/*.smk.

    Handles both layouts snakefmt allows: ``conda: "x"`` and the value on the next line.
    """
    rules: dict[str, dict[str, str]] = {}
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        text = smk.read_text(encoding="utf-8")
        headers = list(RULE_HEADER.finditer(text))
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            body = _rule_body(text[header.start():end])
            info: dict[str, str] = {"file": smk.name}
            for j, line in enumerate(body):
                match = DIRECTIVE.match(line)
                if not match:
                    continue
                key, value = match.group(1), match.group(2).strip()
                if not value:
                    value = next((b.strip() for b in body[j + 1:] if b.strip()), "")
                if key in ("conda", "script"):
                    info[key] = value.rstrip(",").strip("\"'")
                if key in ACTIONS:
                    info["action"] = key
            rules[header.group(1)] = info
    return rules


RULES = parse_rules()
WORKING_RULES = sorted(name for name, info in RULES.items() if info.get("action"))
SCRIPT_RULES = sorted(name for name, info in RULES.items() if "script" in info)


def load_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(env, dict) or "dependencies" not in env:
        raise ValueError(f"{path}: expected a mapping with 'dependencies', got {env!r:.80}")
    return env


def env_pins(path: Path) -> dict[str, str]:
    """Canonical distribution name -> pinned version, conda and pip entries together."""
    pins: dict[str, str] = {}
    for dep in load_env(path)["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            if entry == SELF_INSTALL or entry.startswith("--"):
                continue
            name, sep, version = entry.partition("==")
            assert sep and version and not re.search(r"[<>=!~*,; ]", version), (
                f"{path.name}: '{entry}' is not pinned exactly (name==version)"
            )
            pins[canonicalize_name(name)] = version
    return pins


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"pyproject.toml: '{line}' is not pinned with =="
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def _module_file(module: str) -> Path | None:
    """The source file of an mrct module, or None if ``module`` is not one of ours."""
    if module != "mrct" and not module.startswith("mrct."):
        return None
    base = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{base}: imported module {module} has no source file")


def _imports(path: Path, package: str | None) -> set[str]:
    """Absolute names of every module ``path`` imports (anywhere, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = (package or "").split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            # `from mrct import training` imports the submodule mrct.training.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def third_party_imports(script: Path) -> dict[str, str]:
    """Top-level third-party module -> the file that imports it, following mrct imports."""
    found: dict[str, str] = {}
    todo: list[tuple[Path, str | None]] = [(script, None)]
    seen: set[Path] = set()
    while todo:
        path, package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path, package):
            top = name.split(".")[0]
            if top == "mrct":
                for prefix in _prefixes(name):
                    try:
                        file = _module_file(prefix)
                    except FileNotFoundError:
                        if prefix == name and "." in name:  # `from mrct.x import function`
                            continue
                        raise
                    pkg = prefix if file.name == "__init__.py" else prefix.rpartition(".")[0]
                    todo.append((file, pkg))
            elif top and top not in sys.stdlib_module_names and top not in RUNTIME_MODULES:
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _prefixes(name: str) -> list[str]:
    """mrct.a.b -> [mrct, mrct.a, mrct.a.b]: importing a module runs its parents' __init__."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@functools.cache
def _installed_modules() -> dict[str, list[str]]:
    return packages_distributions()


def distributions_of(module: str) -> set[str]:
    """Distributions that provide an import name, from the installed metadata (not a table)."""
    mapping = _installed_modules()
    if module not in mapping:
        raise ValueError(f"import '{module}': no installed distribution provides it")
    return {canonicalize_name(d) for d in mapping[module]}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_parses_and_pins_everything(path: Path) -> None:
    env = load_env(path)
    assert env.get("channels") and env["channels"][0] == "conda-forge", path.name
    assert "defaults" not in env["channels"], f"{path.name}: the defaults channel is not pinned"
    pins = env_pins(path)
    assert {"python", "pip"} <= set(pins), f"{path.name}: python and pip must be pinned"
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert pip and SELF_INSTALL in pip[0]["pip"], f"{path.name}: does not install mrct itself"


def test_envs_exist() -> None:
    assert {p.name for p in ENVS} == {"data.yaml", "torch.yaml", "report.yaml"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_agree_with_pyproject(path: Path) -> None:
    project = pyproject_pins()
    pins = env_pins(path)
    unknown = sorted(set(pins) - set(project) - {"python", "pip"})
    assert not unknown, f"{path.name}: {unknown} are not pinned in pyproject.toml"
    differ = {n: (v, project[n]) for n, v in pins.items() if n in project and v != project[n]}
    assert not differ, f"{path.name}: env vs pyproject versions differ: {differ}"


def test_python_pin_matches_pyproject_range() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    for path in ENVS:
        assert env_pins(path)["python"] in SpecifierSet(requires), path.name


@pytest.mark.parametrize("rule", WORKING_RULES)
def test_every_rule_names_an_existing_env(rule: str) -> None:
    info = RULES[rule]
    assert "conda" in info, f"rule {rule} ({info['file']}) has no conda: directive"
    env = (ROOT / "rules" / info["conda"]).resolve()
    assert env.parent == ROOT / "envs" and env.exists(), f"rule {rule}: {info['conda']}"
    if rule in EXPECTED_ENV:
        assert env.name == EXPECTED_ENV[rule], f"rule {rule} runs in {env.name}"


@pytest.mark.parametrize("rule", SCRIPT_RULES)
def test_env_provides_the_modules_of_the_rule_script(rule: str) -> None:
    info = RULES[rule]
    script = (ROOT / "rules" / info["script"]).resolve()
    assert script.exists(), f"rule {rule}: script {script} does not exist"
    pins = env_pins((ROOT / "rules" / info["conda"]).resolve())
    missing = {
        module: importer
        for module, importer in third_party_imports(script).items()
        if not distributions_of(module) & set(pins)
    }
    assert not missing, f"rule {rule} ({info['conda']}) lacks modules imported by: {missing}"


def test_import_analysis_follows_the_package(tmp_path: Path) -> None:
    """The analysis itself: it must see through mrct imports, relative ones included."""
    script = tmp_path / "script.py"
    script.write_text("import os\nfrom mrct.config import load_config\n")
    found = third_party_imports(script)
    # mrct.config imports jsonschema and yaml; os is stdlib.
    assert {"jsonschema", "yaml"} <= set(found) and "os" not in found
    assert distributions_of("yaml") == {"pyyaml"}
    assert distributions_of("skimage") == {"scikit-image"}
    # The data environment must not look as if it provided torch.
    assert not distributions_of("torch") & set(env_pins(ROOT / "envs" / "data.yaml"))
    with pytest.raises(ValueError, match="no installed distribution"):
        distributions_of("surely_not_a_module_xyz")


def test_rule_parser_reads_directives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "rules"
    fake.mkdir()
    (tmp_path / "Snakefile").write_text("rule all:\n    input:\n        'x',\n")
    (fake / "a.smk").write_text(
        'rule one:\n    output:\n        "a",\n    conda:\n        "../envs/data.yaml"\n'
        '    script:\n        "../scripts/one.py"\n\n\nrule two:\n    shell:\n        "touch {output}"\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    rules = parse_rules()
    assert rules["one"]["conda"] == "../envs/data.yaml"
    assert rules["one"]["script"] == "../scripts/one.py"
    assert rules["two"]["action"] == "shell" and "conda" not in rules["two"]
    assert rules["all"].get("action") is None


def test_the_parsed_rules_are_the_workflows_rules(tmp_path: Path) -> None:
    # The parametrised tests above run over what parse_rules finds: if it stopped matching (a new
    # layout of the rule files), they would shrink to "empty parameter set" skips. Snakemake's own
    # list of rules (a parse of the workflow that imports no torch, about 3 s) is the yardstick.
    import shutil
    import subprocess
    import sys

    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    listed = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                             "--list-rules"], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert len(listed) >= 20 and set(RULES) == set(listed)
    assert set(WORKING_RULES) == set(listed) - {"all"}
    assert set(SCRIPT_RULES) == set(WORKING_RULES), "every working rule runs a script of scripts/"
