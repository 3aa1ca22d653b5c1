"""Shared fixtures: tiny synthetic volumes, a local HTTP server, and the suite's one end-to-end run."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

# The tiny-config helpers (tests/slurm/tiny_workflow.py), importable as ``tiny_workflow`` by every test.
sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import tiny_workflow as tw  # noqa: E402


#: The shared run started in the background when collection ends: its workdir, process and log.
_BACKGROUND: dict[str, object] = {}


def _reads_the_shared_run(item: pytest.Item) -> bool:
    return "e2e_run" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules that read the shared run go last (each module whole, in its own order), so
    that the run, started in the background, overlaps every other test instead of waiting first."""
    late = {item.module for item in items if _reads_the_shared_run(item)}
    items.sort(key=lambda item: item.module in late)  # stable: the order within each group is kept


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the shared run now, beside the tests, when a selected test reads it."""
    if (os.environ.get("MRCT_E2E_RUN") or session.config.option.collectonly
            or not any(_reads_the_shared_run(item) for item in session.items)):
        return
    workdir = tw.write_workdir(session.config._tmp_path_factory.mktemp("e2e"), tw.e2e_config())
    log_path = workdir.parent / f"{workdir.name}.snakemake.log"
    with log_path.open("w", encoding="utf-8") as log:  # the child keeps its own handle
        process = subprocess.Popen(tw.snakemake_command(workdir, "--cores", "2"), cwd=tw.ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
    _BACKGROUND.update(workdir=workdir, process=process, log=log_path)


def pytest_sessionfinish(session: pytest.Session) -> None:
    process = _BACKGROUND.get("process")
    if isinstance(process, subprocess.Popen) and process.poll() is None:  # interrupted before it was read
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole workflow, run once for the session on ``tw.e2e_config()`` (``rule all``).

    Tests read it; a test that must change it (a config, a file, a rerun) works on a copy
    (``e2e_copy``), so one run serves the workflow, rerun, reader-study and report tests. It
    started in the background when collection ended (``pytest_collection_finish``); this waits for it.
    """
    reuse = os.environ.get("MRCT_E2E_RUN")
    if reuse:
        # While iterating on the assertions: a workdir finished before with tw.e2e_config(); tests
        # still only read it (the ones that change it work on copies).
        workdir = Path(reuse)
        assert tw.dry_run(workdir) == [], f"MRCT_E2E_RUN={reuse} is not a finished run of the current workflow"
        return workdir
    if not _BACKGROUND:  # not started (a test outside the collected session asked for it)
        workdir = tw.write_workdir(tmp_path_factory.mktemp("e2e"), tw.e2e_config())
        tw.snakemake(workdir, "--cores", "2", timeout=3000)
        return workdir
    process, log_path = _BACKGROUND["process"], _BACKGROUND["log"]
    assert isinstance(process, subprocess.Popen) and isinstance(log_path, Path)
    try:
        returncode = process.wait(timeout=3000)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    if returncode != 0:
        output = log_path.read_text(encoding="utf-8", errors="replace")
        raise AssertionError(f"the shared end-to-end run failed ({returncode}), log {log_path}:\n{output[-6000:]}")
    return Path(str(_BACKGROUND["workdir"]))


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

    import SimpleITK as sitk  # here, not at the top: the GPU-only tests run where SimpleITK is not installed

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

    ``cut`` ends a response after that many bytes of the body it sends (a dropped connection);
    ``cut_times`` limits the cut to the first that many requests (None: every request).
    ``Range: bytes=N-`` is answered with 206 and the rest from byte N, unless ``ignore_range``
    (then 200 and the whole body, as servers without range support do); ``If-Range`` that
    differs from ``etag`` also gets the whole body. ``busy_times`` answers the first that many
    requests with 503 and ``Retry-After: retry_after`` (when set). ``stall_s`` keeps a cut
    connection open that long before closing it (a stalled transfer: the client times out).
    """

    body: bytes
    cut: int | None = None
    cut_times: int | None = None
    served: int = 0
    ignore_range: bool = False
    etag: str | None = None
    busy_times: int = 0
    retry_after: str | None = None
    stall_s: float = 0.0


@dataclass
class FileServer:
    """An HTTP server on 127.0.0.1 serving ``routes``; ``requests`` lists every GET path and
    ``headers`` the request headers of each (same order)."""

    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


def _requested_start(route: Route, headers: dict[str, str]) -> int | None:
    """The first byte a Range request asks for, when this route answers it with 206."""
    match = re.fullmatch(r"bytes=(\d+)-", headers.get("Range", ""))
    if route.ignore_range or match is None:
        return None
    if "If-Range" in headers and headers["If-Range"] != route.etag:
        return None
    return int(match.group(1))


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """Start a threaded HTTP server on a free port of 127.0.0.1 for the duration of a test.

    A route with ``cut`` sends the full Content-Length header, then only ``cut`` bytes, then
    closes the connection: a download cut mid-file. See Route for ranges and 503 answers.
    """
    server_state = FileServer(base_url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            headers = dict(self.headers.items())
            server_state.requests.append(self.path)
            server_state.headers.append(headers)
            route = server_state.routes.get(self.path.lstrip("/"))
            if route is None:
                self.send_error(404, "not found")
                return
            route.served += 1
            if route.served <= route.busy_times:
                self.send_response(503)
                if route.retry_after is not None:
                    self.send_header("Retry-After", route.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = _requested_start(route, headers)
            if start is not None and start >= len(route.body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(route.body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = route.body if start is None else route.body[start:]
            self.send_response(200 if start is None else 206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if start is not None:
                self.send_header("Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}")
            if route.etag is not None:
                self.send_header("ETag", route.etag)
            if not route.ignore_range:
                self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = route.cut is not None and (route.cut_times is None or route.served <= route.cut_times)
            self.wfile.write(body[: route.cut] if cut else body)
            self.wfile.flush()
            if cut and route.stall_s:
                time.sleep(route.stall_s)
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
