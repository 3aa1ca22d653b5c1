"""Device choice: CUDA_VISIBLE_DEVICES first, else one GPU slot per job by lock, CPU fallback.

The machine running the tests has no GPU: a child process (or monkeypatch) makes torch report
two, which is all the choice looks at.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mrct.io import device as device_module
from mrct.io.device import LOCK_DIR_ENV, release_gpu, resolve_device

# A job on a machine that reports two GPUs: wait for the start signal (a file), choose, print
# the choice, hold it until stdin closes (the lock lives as long as the process).
JOB = """
import sys, time
from pathlib import Path
import torch
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 2
from mrct.io.device import resolve_device
go = Path(sys.argv[1])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
print(resolve_device("auto"), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def two_gpus(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    release_gpu()
    yield tmp_path / "locks"
    release_gpu()


def _start_jobs(n: int, go: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", JOB, str(go)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env) for _ in range(n)]


def test_jobs_started_at_once_pick_different_gpus_then_share(two_gpus, tmp_path):
    env = {**os.environ, LOCK_DIR_ENV: str(two_gpus)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    go = tmp_path / "go"
    jobs = _start_jobs(2, go, env)
    assert [job.stdout.readline().strip() for job in jobs] == ["ready", "ready"]
    go.touch()  # both processes are up and spinning on this file: they choose in the same instant
    try:
        first = sorted(job.stdout.readline().strip() for job in jobs)
        assert first == ["cuda:0", "cuda:1"]
        # A third job while both hold their GPU (--resources gpu=3 on 2 GPUs): a second slot.
        third = _start_jobs(1, go, env)[0]
        assert third.stdout.readline().strip() == "ready"
        assert third.stdout.readline().strip() == "cuda:0"
        jobs.append(third)
        assert sorted(p.name for p in two_gpus.iterdir()) == ["gpu0.slot0.lock", "gpu0.slot1.lock",
                                                             "gpu1.slot0.lock"]
    finally:
        for job in jobs:
            job.communicate("", timeout=30)
    # All ended: their locks went with them, so the next job gets GPU 0 slot 0 again.
    assert device_module.claim_gpu(2, two_gpus) == torch.device("cuda", 0)


def test_in_one_process_the_claim_is_kept_and_slots_fill_gpus_first(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # the same process keeps its GPU
    held = device_module._held
    device_module._held = None  # pretend to be another process (the first lock stays held)
    try:
        assert resolve_device("auto") == torch.device("cuda", 1)
        release_gpu()
        assert resolve_device("auto") == torch.device("cuda", 1)  # GPU 0 slot 0 is still taken
    finally:
        release_gpu()
        device_module._held = held


def test_cuda_visible_devices_is_honoured_without_locks(two_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert resolve_device("auto") == torch.device("cuda", 0)  # the GPU it names, as cuda:0
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit index is taken as given
    assert not two_gpus.exists()  # no lock taken: the scheduler already chose
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # set but empty: not a choice
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert (two_gpus / "gpu0.slot0.lock").exists()


def test_without_cuda_auto_is_cpu_and_cuda_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
