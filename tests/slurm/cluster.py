"""A throw-away single-node SLURM cluster on localhost, for the SLURM integration test.

Why: the SLURM profile is only worth something if a real ``sbatch``/``squeue`` accepts what
the executor plugin submits (partitions, memory, run time, GPUs). Debian's slurm-wlm packages
give us the real daemons; this module writes a minimal config into a temporary directory,
starts munged, slurmctld and slurmd as root (no systemd, no cgroups) and stops them again.
Clients find the cluster through the ``SLURM_CONF`` variable of :attr:`LocalCluster.env`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# snakemake-executor-plugin-slurm-jobstep removes SLURM_* variables (SLURM_CONF included) before
# its inner `srun`, so inside a job the config must be where clients look by default.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol"]


def missing_requirement() -> str | None:
    """Why a cluster cannot be started here, or None when it can (root and apt-get)."""
    if os.geteuid() != 0:
        return "the SLURM daemons must run as root and this user is not root"
    if all(shutil.which(tool) for tool in DAEMONS):
        return None
    if shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is missing to install it"
    return None


def install_slurm() -> None:
    """apt-get install the SLURM and munge packages unless their programs are already there."""
    if all(shutil.which(tool) for tool in DAEMONS):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing %s with apt-get", " ".join(PACKAGES))
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ValueError("/proc/meminfo: expected a MemTotal line, got none")


@dataclass
class LocalCluster:
    """A running localhost cluster; ``env`` points SLURM clients at it."""

    root: Path
    env: dict[str, str]
    partitions: list[str]
    started: list[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sinfo, squeue, ...) against this cluster."""
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=check)

    def node_state(self) -> str:
        result = self.run("sinfo", "--noheader", "--Node", "--format=%t", check=False)
        return result.stdout.split()[0] if result.stdout.split() else ""

    def stop(self) -> None:
        """Stop the daemons this cluster started (by pid file), newest first."""
        if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.resolve() == self.root / "slurm.conf":
            DEFAULT_CONF.unlink()
        for name in reversed(self.started):
            pid_file = self.root / f"{name}.pid"
            if not pid_file.exists():
                continue
            try:
                os.kill(int(pid_file.read_text(encoding="utf-8").split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        self.started.clear()


def _write_config(
    root: Path, partitions: list[str], min_job_age: int, cpus: int, memory_mb: int
) -> None:
    cpus = max(cpus, os.cpu_count() or 1)
    real_memory = max(memory_mb, 1000)
    lines = [
        f"PartitionName={name} Nodes=localhost MaxTime=INFINITE State=UP"
        + (" Default=YES" if i == 0 else "")
        for i, name in enumerate(partitions)
    ]
    text = (HERE / "slurm.conf.template").read_text(encoding="utf-8").format(
        root=root,
        cpus=cpus,
        real_memory=real_memory,
        def_mem_per_cpu=max(100, real_memory // (4 * cpus)),
        min_job_age=min_job_age,
        ctld_port=_free_port(),
        slurmd_port=_free_port(),
        partitions="\n".join(lines),
    )
    (root / "slurm.conf").write_text(text)
    shutil.copy(HERE / "gres.conf.template", root / "gres.conf")
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)


def _start_munge(root: Path, started: list[str]) -> None:
    """Start munged unless one already answers (then it is not ours to stop)."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    pid_file = root / "munged.pid"
    subprocess.run(
        ["runuser", "-u", "munge", "--", "munged", "--force"], check=True, capture_output=True
    )
    pid = (run_dir / "munged.pid").read_text(encoding="utf-8") if (run_dir / "munged.pid").exists() else ""
    pid_file.write_text(pid)
    started.append("munged")


def _wait(predicate, timeout_s: float, what: str, root: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(encoding='utf-8', errors='replace')[-3000:]}" for p in sorted(root.glob("*.log"))
    )
    raise TimeoutError(f"{root}: {what} not reached within {timeout_s} s\n{logs}")


MARKER = ".mrct-test-cluster"


def _link_default_conf(conf: Path) -> None:
    """Point /etc/slurm/slurm.conf at ``conf``; never replace a real cluster's config."""
    (conf.parent / MARKER).touch()
    if DEFAULT_CONF.is_symlink() and (
        not DEFAULT_CONF.exists() or (DEFAULT_CONF.resolve().parent / MARKER).exists()
    ):
        DEFAULT_CONF.unlink()  # left behind by a test run that was killed
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        raise FileExistsError(
            f"{DEFAULT_CONF}: expected no SLURM config on this machine (the test cluster links "
            f"its own there), got {DEFAULT_CONF.resolve()}"
        )
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)


def start_cluster(
    root: Path,
    partitions: list[str],
    min_job_age: int = 300,
    cpus: int = 1,
    memory_mb: int | None = None,
) -> LocalCluster:
    """Write the config under ``root``, start the daemons and wait until the node is idle.

    ``cpus`` and ``memory_mb`` are what the node advertises (at least the machine's CPUs and
    80 % of its memory): jobs larger than the machine are accepted and simply share it.
    """
    root.mkdir(parents=True, exist_ok=True)
    if memory_mb is None:
        memory_mb = int(_memory_mb() * 0.8)
    _write_config(root, partitions, min_job_age, cpus, memory_mb)
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    cluster = LocalCluster(root=root, env=env, partitions=partitions)
    _link_default_conf(root / "slurm.conf")
    try:
        _start_munge(root, cluster.started)
        # -i: ignore saved state from an earlier run; both daemons daemonise themselves.
        subprocess.run(["slurmctld", "-i"], env=env, check=True)
        cluster.started.append("slurmctld")
        _wait(lambda: cluster.run("scontrol", "ping", check=False).returncode == 0,
              30, "slurmctld answering", root)
        subprocess.run(["slurmd", "-N", "localhost"], env=env, check=True)
        cluster.started.append("slurmd")
        _wait(lambda: cluster.node_state() == "idle", 60, "node localhost idle", root)
    except BaseException:
        cluster.stop()
        raise
    log.info("SLURM cluster up in %s, partitions %s", root, partitions)
    return cluster
