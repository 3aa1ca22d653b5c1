"""Shared fixtures: tiny synthetic volumes, a local HTTP server, and the suite's one end-to-end run."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

# The tiny-config helpers (tests/slurm/tiny_workflow.py), importable as ``tiny_workflow`` by every test.
sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import tiny_workflow as tw  # noqa: E402


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole workflow, run once for the session on ``tw.e2e_config()`` (``rule all``).

    Tests read it; a test that must change it (a config, a file, a rerun) works on a copy
    (``e2e_copy``), so one run serves the workflow, rerun, reader-study and report tests.
    """
    reuse = os.environ.get("MRCT_E2E_RUN")
    if reuse:
        # While iterating on the assertions: a workdir finished before with tw.e2e_config(); tests
        # still only read it (the ones that change it work on copies).
        workdir = Path(reuse)
        assert tw.dry_run(workdir) == [], f"MRCT_E2E_RUN={reuse} is not a finished run of the current workflow"
        return workdir
    workdir = tw.write_workdir(tmp_path_factory.mktemp("e2e"), tw.e2e_config())
    tw.snakemake(workdir, "--cores", "2", timeout=3000)
    return workdir


@pytest.fixture
def e2e_copy(e2e_run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared run (times and Snakemake metadata kept)."""
    return tw.copy_workdir(e2e_run, tmp_path / "work")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def make_volume(tmp_path: Path, rng: np.random.Generator) -> Callable[..., Path]:
    """Factory writing a small volume with SimpleITK directly (not through mrct.io.volumes).

    ``make_volume("mr.nii.gz")`` writes random 8x8x8 float32 data; ``array`` (numpy order
    z, y, x), ``spacing`` and ``direction`` override the defaults.
    """

    def make(
        name: str,
        array: np.ndarray | None = None,
        spacing: tuple[float, ...] | None = None,
        direction: tuple[float, ...] | None = None,
        is_vector: bool = False,
    ) -> Path:
        if array is None:
            array = rng.normal(100.0, 20.0, size=(8, 8, 8)).astype(np.float32)
        image = sitk.GetImageFromArray(array, isVector=is_vector)
        if spacing is not None:
            image.SetSpacing(spacing)
        if direction is not None:
            image.SetDirection(direction)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))
        return path

    return make


@dataclass
class Route:
    """What the test server answers for one path: ``body``, optionally cut after ``cut`` bytes.

    ``cut_times`` limits the cut to the first that many requests (None: every request).
    """

    body: bytes
    cut: int | None = None
    cut_times: int | None = None
    served: int = 0


@dataclass
class FileServer:
    """An HTTP server on 127.0.0.1 serving ``routes``; ``requests`` lists every GET path."""

    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """Start a threaded HTTP server on a free port of 127.0.0.1 for the duration of a test.

    A route with ``cut`` sends the full Content-Length header, then only ``cut`` bytes, then
    closes the connection: a download cut mid-file.
    """
    server_state = FileServer(base_url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server_state.requests.append(self.path)
            route = server_state.routes.get(self.path.lstrip("/"))
            if route is None:
                self.send_error(404, "not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            route.served += 1
            cut = route.cut is not None and (route.cut_times is None or route.served <= route.cut_times)
            self.wfile.write(route.body[: route.cut] if cut else route.body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
