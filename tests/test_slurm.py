"""The SLURM profile, run for real on a single-node SLURM cluster started on localhost.

The session fixture installs Debian's slurm-wlm packages if needed, starts munged, slurmctld
and slurmd (tests/slurm/cluster.py) with the partitions that profiles/slurm names, runs
Snakemake with that profile unchanged, and checks that jobs went through sbatch and finished.
Only three options are added for this cluster, all because it has no accounting database
(slurmdbd): ``--slurm-status-command squeue`` (``sacct`` fails without slurmdbd and the plugin
would wait forever), an early first status check (it must stay under MinJobAge/3, else the
plugin switches back to sacct) and ``--slurm-no-account`` (no sacctmgr to check accounts).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"
MIN_JOB_AGE = 300
FIRST_STATUS_CHECK_S = 3
# "Job 3 has been submitted with SLURM jobid 7 (log: .../slurm_logs/rule_train/scratch/7.log)."
# (group jobs have a uuid instead of a number, and a group_<name>_... log folder)
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _load_cluster_module():
    spec = importlib.util.spec_from_file_location("slurm_cluster", ROOT / "tests/slurm/cluster.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cluster_module = _load_cluster_module()


import tiny_workflow as tw  # noqa: E402 - tests/slurm/, on the path through conftest.py


def profile_settings() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text(encoding="utf-8"))


def profile_partitions_and_sizes() -> tuple[list[str], int, int]:
    """Partitions the profile names (default first), and its largest cpus_per_task and mem_mb."""
    profile = profile_settings()
    resources = [profile["default-resources"], *profile.get("set-resources", {}).values()]
    partitions = [profile["default-resources"]["slurm_partition"]]
    for res in resources:
        if res.get("slurm_partition") and res["slurm_partition"] not in partitions:
            partitions.append(res["slurm_partition"])
    cpus = max(int(r.get("cpus_per_task", 1)) for r in resources)
    mem = max(int(r.get("mem_mb", 0)) for r in resources)
    return partitions, cpus, mem


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    reason = cluster_module.missing_requirement()
    if reason:
        pytest.skip(reason)
    cluster_module.install_slurm()
    partitions, cpus, mem = profile_partitions_and_sizes()
    cluster = cluster_module.start_cluster(
        tmp_path_factory.mktemp("slurm"), partitions, MIN_JOB_AGE, cpus=cpus, memory_mb=mem
    )
    yield cluster
    cluster.stop()


def gpu_rules() -> set[str]:
    """Rules that declare a gpu resource (``gpu=1`` under ``resources:``) in rules/*.smk."""
    found = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(encoding="utf-8"), flags=re.MULTILINE):
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if name and re.search(r"^\s+gpu=\d+", block, re.MULTILINE):
                found.add(name.group(1))
    return found


def test_every_gpu_rule_is_sent_to_the_gpu_partition() -> None:
    """A GPU job left in the default (CPU) partition would wait forever for a GPU there."""
    profile = profile_settings()
    default = profile["default-resources"]["slurm_partition"]
    rules = gpu_rules()
    assert {"train", "predict"} <= rules, rules
    for rule in rules:
        settings = profile["set-resources"].get(rule, {})
        assert settings.get("slurm_partition", default) != default, f"{rule}: no GPU partition"
        assert settings.get("gpu") == 1 or "gpu" in str(settings.get("gres", "")), rule


@pytest.fixture
def tiny_workdir_for_slurm(tmp_path: Path) -> tuple[Path, list[str]]:
    """A workdir with the tiny config, and a trained model as the target."""
    # Two patients (the fewest a split allows): one trains, one is tested.
    config = tw.tiny_config(dataset={"demo": {"n_patients": 2}})
    workdir = tw.write_workdir(tmp_path / "work", config)
    assert {"split", "train"} <= tw.available_rules(workdir), "rules split and train must exist"
    return workdir, ["results/models/scratch/G_mr2ct.pth"]


def run_snakemake(cluster, workdir: Path, *args: str, snakefile: Path | None = None,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """Snakemake as docs/running.md says for SLURM, plus this cluster's three options.

    ``--workflow-profile none``: Snakemake would otherwise also apply profiles/default (the
    workstation profile, found next to the Snakefile) over this one, with its gpu=1 limit.
    """
    cmd = [
        sys.executable, "-m", "snakemake",
        "--profile", str(PROFILE),
        "--workflow-profile", "none",
        "--directory", str(workdir),
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", str(FIRST_STATUS_CHECK_S),
        "--slurm-no-account",
        *(["--snakefile", str(snakefile)] if snakefile else []),
        *args,
    ]
    assert FIRST_STATUS_CHECK_S * 3 < MIN_JOB_AGE
    result = subprocess.run(cmd, cwd=ROOT, env=cluster.env, capture_output=True, text=True,
                            timeout=timeout)
    output = result.stdout + result.stderr
    for job, slurm_id, slurm_log in SUBMITTED.findall(output):
        log.info("snakemake job %s -> sbatch job %s (%s)", job, slurm_id, slurm_log)
    if result.returncode != 0:
        slurm_logs = "\n".join(
            f"--- {p}\n{p.read_text(encoding='utf-8', errors='replace')[-2000:]}"
            for p in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        )
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{output[-6000:]}\n"
                             f"{slurm_logs}")
    return result


def submitted_jobs(result: subprocess.CompletedProcess) -> dict[str, str]:
    """SLURM job id -> what it ran: "rule_<name>" or "group_<name>_..." (its log folder)."""
    return {
        slurm_id: Path(slurm_log).parts[Path(slurm_log).parts.index("slurm_logs") + 1]
        for _, slurm_id, slurm_log in SUBMITTED.findall(result.stdout + result.stderr)
    }


def job_table(cluster) -> dict[str, dict[str, str]]:
    """squeue's view of every job, finished ones included (kept for MinJobAge seconds)."""
    fields = ["JobID", "State", "Partition", "tres-per-job"]
    out = cluster.run("squeue", "--states=all", "--noheader",
                      "--Format=" + ",".join(f"{f}:40" for f in fields)).stdout
    table = {}
    for line in out.splitlines():
        values = line.split()
        if values:
            table[values[0]] = dict(zip(fields[1:], values[1:] + ["", ""]))
    return table


def assert_completed(cluster, slurm_ids: list[str]) -> dict[str, dict[str, str]]:
    """Every sbatch job of the run finished as COMPLETED; returns squeue's table."""
    table = job_table(cluster)
    states = {i: table.get(i, {}).get("State") for i in slurm_ids}
    assert set(states.values()) == {"COMPLETED"}, states
    return table


def report_to_terminal(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Show the sbatch jobs in the plain `pytest` output too, as the evidence CI keeps."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    for line in lines:
        log.info(line)
        if reporter is not None and capture is not None:
            # Output capture is on during a test; the lines must reach the real terminal.
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)


def test_tiny_workflow_through_the_slurm_profile(
    slurm_cluster, tiny_workdir_for_slurm, request: pytest.FixtureRequest
) -> None:
    """The real workflow on the tiny config, through training: every job via sbatch.

    Checks what the profile promises: per-patient preprocessing as one group job each in
    the default partition, training in the GPU partition with one GPU, all COMPLETED.
    """
    workdir, targets = tiny_workdir_for_slurm
    result = run_snakemake(slurm_cluster, workdir, *targets, timeout=1200)
    jobs = submitted_jobs(result)
    log.info("sbatch jobs: %s", jobs)
    assert jobs, "no job was submitted with sbatch"
    table = assert_completed(slurm_cluster, list(jobs))
    report_to_terminal(request, [""] + [
        f"SLURM sbatch job {i}: {what}, partition {table[i]['Partition']}, "
        f"tres {table[i]['tres-per-job']}, {table[i]['State']}"
        for i, what in jobs.items()
    ])
    for target in targets:
        assert (workdir / target).exists(), target

    profile = profile_settings()
    default_partition = profile["default-resources"]["slurm_partition"]
    groups = [i for i, what in jobs.items() if what.startswith("group_preprocess")]
    demo = yaml.safe_load((workdir / "config.yaml").read_text(encoding="utf-8"))["dataset"]["demo"]
    assert len(groups) == demo["n_patients"], jobs
    assert {table[i]["Partition"] for i in groups} == {default_partition}
    train = [i for i, what in jobs.items() if what == "rule_train"]
    assert len(train) == 1, f"expected the one training job of the tiny config, got {jobs}"
    (job,) = train
    assert table[job]["Partition"] == profile["set-resources"]["train"]["slurm_partition"]
    assert "gpu:1" in table[job]["tres-per-job"], table[job]
    assert (workdir / "results/models/scratch/train_log.csv").exists()
