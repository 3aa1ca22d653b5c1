"""mrct.io.download against a real HTTP server on 127.0.0.1 (see the file_server fixture)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from pathlib import Path

import pytest
import yaml
from conftest import FileServer, Route

from mrct.io import download as download_module
from mrct.io.download import ChecksumError, DownloadError, download, read_lock, verify_file


@pytest.fixture
def payload() -> bytes:
    # Larger than one read chunk (1 MiB), so the body arrives in several pieces.
    return bytes(range(256)) * (5 * 4096 + 7)


def _leftovers(folder: Path, dest: Path) -> list[str]:
    """Everything in ``folder`` apart from ``dest`` and the lock file: temp files must not stay."""
    return sorted(p.name for p in folder.iterdir() if p != dest and not p.name.endswith(".lock"))


def test_good_file_is_saved_and_recorded_then_verified_without_download(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    file_server.routes["Task1.zip"] = Route(payload)
    dest = tmp_path / "raw" / "Task1.zip"
    lock = tmp_path / "raw.lock"

    assert download(file_server.url("Task1.zip"), dest, lock_file=lock, backoff=0) == dest
    assert dest.read_bytes() == payload
    digest = hashlib.sha256(payload).hexdigest()
    assert read_lock(lock) == {"raw/Task1.zip": digest}
    assert yaml.safe_load(lock.read_text(encoding="utf-8")) == {"raw/Task1.zip": digest}
    assert _leftovers(dest.parent, dest) == []
    assert len(file_server.requests) == 1

    download(file_server.url("Task1.zip"), dest, lock_file=lock, backoff=0)
    assert len(file_server.requests) == 1, "an existing, verified file must not be downloaded again"


def test_explicit_sha256_is_accepted_when_it_matches(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    file_server.routes["a.bin"] = Route(payload)
    dest = tmp_path / "a.bin"
    download(file_server.url("a.bin"), dest, sha256=hashlib.sha256(payload).hexdigest().upper())
    assert dest.read_bytes() == payload


def test_checksum_mismatch_keeps_nothing(tmp_path: Path, file_server: FileServer, payload: bytes) -> None:
    file_server.routes["Task1.zip"] = Route(payload)
    dest = tmp_path / "Task1.zip"
    url = file_server.url("Task1.zip")
    wrong = "0" * 64
    got = hashlib.sha256(payload).hexdigest()
    with pytest.raises(ChecksumError, match=re.escape(url)) as info:
        download(url, dest, sha256=wrong, backoff=0)
    assert wrong in str(info.value) and got in str(info.value)
    assert not dest.exists()
    assert _leftovers(tmp_path, dest) == []


def test_mismatch_with_the_lock_file_keeps_nothing(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    file_server.routes["Task1.zip"] = Route(payload)
    dest = tmp_path / "Task1.zip"
    lock = tmp_path / "data.lock"
    lock.write_text(yaml.safe_dump({"Task1.zip": "f" * 64}))
    with pytest.raises(ChecksumError, match="f" * 64):
        download(file_server.url("Task1.zip"), dest, lock_file=lock, backoff=0)
    assert not dest.exists()
    assert read_lock(lock) == {"Task1.zip": "f" * 64}, "a mismatch must not overwrite the record"


def test_connection_cut_every_time_keeps_the_partial_file_and_a_rerun_continues(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    """A server without Range support that always drops mid-file: the call fails with nothing
    under the final name, the bytes stay beside it, and a later call continues from them."""
    file_server.routes["Task1.zip"] = Route(payload, cut=len(payload) // 2, ignore_range=True)
    dest = tmp_path / "Task1.zip"
    url = file_server.url("Task1.zip")
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        download(url, dest, lock_file=tmp_path / "x.lock", retries=3, backoff=0)
    assert "Content-Length" in str(info.value) and "a rerun continues" in str(info.value)
    # The first request brought new bytes (no try used); three more brought none.
    assert len(file_server.requests) == 4
    assert all("Range" in h for h in file_server.headers[1:]), "each retry asks for the rest"
    assert not dest.exists()
    assert _leftovers(tmp_path, dest) == [".Task1.zip.part", ".Task1.zip.part.json"]
    assert not (tmp_path / "x.lock").exists(), "nothing is recorded for a failed download"

    # The server now honours Range and no longer drops: the rerun asks only for the rest.
    file_server.routes["Task1.zip"] = Route(payload)
    download(url, dest, lock_file=tmp_path / "x.lock", backoff=0)
    assert file_server.headers[-1]["Range"] == f"bytes={len(payload) // 2}-"
    assert dest.read_bytes() == payload
    assert _leftovers(tmp_path, dest) == []


def test_truncation_then_success_is_retried(tmp_path: Path, file_server: FileServer, payload: bytes) -> None:
    """A first cut attempt followed by a good one ends with the complete file."""
    file_server.routes["f.bin"] = Route(payload, cut=1000, cut_times=1, ignore_range=True)
    dest = tmp_path / "f.bin"
    download(file_server.url("f.bin"), dest, retries=2, backoff=0)
    assert dest.read_bytes() == payload
    assert len(file_server.requests) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_server_names_url_and_hand_placement_path(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/Task1.zip"
    dest = tmp_path / "raw" / "Task1.zip"
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        download(url, dest, retries=2, backoff=0, timeout=5)
    message = str(info.value)
    assert str(dest.resolve()) in message and "by hand" in message
    assert not dest.exists()
    assert _leftovers(dest.parent, dest) == []


def test_http_404_is_not_retried(tmp_path: Path, file_server: FileServer) -> None:
    with pytest.raises(DownloadError, match="404"):
        download(file_server.url("missing.zip"), tmp_path / "m.zip", retries=3, backoff=0)
    assert len(file_server.requests) == 1


def test_hand_placed_file_is_accepted_and_recorded_offline(tmp_path: Path) -> None:
    dest = tmp_path / "Task1.zip"
    dest.write_bytes(b"placed by hand")
    lock = tmp_path / "data.lock"
    offline_url = f"http://127.0.0.1:{_free_port()}/Task1.zip"
    assert download(offline_url, dest, lock_file=lock) == dest
    assert read_lock(lock) == {"Task1.zip": hashlib.sha256(b"placed by hand").hexdigest()}


def test_existing_file_that_contradicts_the_lock_is_reported_and_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "Task1.zip"
    dest.write_bytes(b"changed since download")
    lock = tmp_path / "data.lock"
    lock.write_text(yaml.safe_dump({"Task1.zip": "a" * 64}))
    with pytest.raises(ChecksumError, match=re.escape(str(dest))):
        verify_file(dest, lock_file=lock)
    assert dest.read_bytes() == b"changed since download"


def test_malformed_lock_file_is_an_error_naming_it(tmp_path: Path) -> None:
    lock = tmp_path / "data.lock"
    lock.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match=re.escape(str(lock))):
        read_lock(lock)


# -- resumption, Retry-After, published md5 --------------------------------------------------


def test_dropped_connection_continues_with_a_range_request(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    cut = len(payload) // 3
    file_server.routes["Task1.zip"] = Route(payload, cut=cut, cut_times=1, etag='"v1"')
    dest = tmp_path / "Task1.zip"
    lock = tmp_path / "data.lock"
    md5 = hashlib.md5(payload).hexdigest()
    download(file_server.url("Task1.zip"), dest, md5=md5, lock_file=lock, retries=1, backoff=0)
    first, second = file_server.headers
    assert "Range" not in first
    assert second["Range"] == f"bytes={cut}-" and second["If-Range"] == '"v1"'
    assert hashlib.md5(dest.read_bytes()).hexdigest() == md5
    assert read_lock(lock) == {"Task1.zip": hashlib.sha256(payload).hexdigest()}
    assert _leftovers(tmp_path, dest) == []


def test_server_ignoring_range_starts_over_and_ends_correct(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    file_server.routes["Task1.zip"] = Route(payload, cut=len(payload) // 2, cut_times=1, ignore_range=True)
    dest = tmp_path / "Task1.zip"
    download(file_server.url("Task1.zip"), dest, md5=hashlib.md5(payload).hexdigest(),
             sha256=hashlib.sha256(payload).hexdigest(), retries=1, backoff=0)
    assert "Range" in file_server.headers[1], "the retry asked for the rest ..."
    assert dest.read_bytes() == payload, "... and the whole body that came instead replaced the partial one"


def test_changed_file_on_the_server_is_fetched_whole(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    """A partial file of version 1: If-Range with its ETag gets all of version 2, not its tail."""
    file_server.routes["a.bin"] = Route(payload, cut=1000, etag='"v1"', ignore_range=True)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError):
        download(file_server.url("a.bin"), dest, retries=1, backoff=0)
    changed = payload[::-1]
    file_server.routes["a.bin"] = Route(changed, etag='"v2"')
    download(file_server.url("a.bin"), dest, backoff=0)
    assert file_server.headers[-1]["If-Range"] == '"v1"'
    assert dest.read_bytes() == changed


def test_complete_partial_file_is_finished_without_a_body(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    """Every byte arrived but the rename did not happen: the server answers 416 to the range."""
    file_server.routes["a.bin"] = Route(payload)
    dest = tmp_path / "a.bin"
    download(file_server.url("a.bin"), dest, backoff=0)
    os.replace(dest, tmp_path / ".a.bin.part")
    (tmp_path / ".a.bin.part.json").write_text(json.dumps({"url": file_server.url("a.bin")}))
    download(file_server.url("a.bin"), dest, sha256=hashlib.sha256(payload).hexdigest(), backoff=0)
    assert dest.read_bytes() == payload


def test_retry_after_is_honoured_and_bounded(
    tmp_path: Path, file_server: FileServer, payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(download_module.time, "sleep", waits.append)
    monkeypatch.setattr(download_module, "MAX_RETRY_AFTER_S", 120)
    file_server.routes["a.bin"] = Route(payload, busy_times=2, retry_after="7")
    download(file_server.url("a.bin"), tmp_path / "a.bin", retries=3, backoff=0.5)
    assert waits == [7.0, 7.0], "the server's Retry-After replaces the backoff"
    file_server.routes["b.bin"] = Route(payload, busy_times=1, retry_after="86400")
    download(file_server.url("b.bin"), tmp_path / "b.bin", retries=3, backoff=0.5)
    assert waits[-1] == 120.0, "a day's wait is cut to the bound"


def test_progress_is_logged_with_rate_and_time_left(
    tmp_path: Path, file_server: FileServer, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    file_server.routes["a.bin"] = Route(payload)
    with caplog.at_level("INFO", logger="mrct.io.download"):
        download(file_server.url("a.bin"), tmp_path / "a.bin", progress_interval=0)
    # Progress lines only ("/s" alone would also match a path such as /tmp/suite/...).
    lines = [r.getMessage() for r in caplog.records if r.getMessage().endswith(" left")]
    assert len(lines) >= 5, "one line per MiB chunk with interval 0"
    assert re.search(r"of 5\.2 MB \(100\.0 %\), .*/s, .* left", lines[-1])


def test_md5_mismatch_keeps_nothing_and_names_both_values(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    file_server.routes["Task1.zip"] = Route(payload)
    dest = tmp_path / "Task1.zip"
    lock = tmp_path / "data.lock"
    url = file_server.url("Task1.zip")
    pinned = "360bc61e2320d5c5a7145454a81c566a"
    with pytest.raises(ChecksumError, match=re.escape(url)) as info:
        download(url, dest, md5=pinned, lock_file=lock, backoff=0)
    message = str(info.value)
    assert pinned in message and hashlib.md5(payload).hexdigest() in message
    assert "Download it again" in message
    assert not dest.exists() and not lock.exists(), "a corrupt file never becomes the sha256 reference"
    assert _leftovers(tmp_path, dest) == [], "wrong bytes are not kept to continue from"


def test_md5_of_a_hand_placed_file_is_checked_before_recording(tmp_path: Path) -> None:
    dest = tmp_path / "Task1.zip"
    dest.write_bytes(b"truncated then padded")
    lock = tmp_path / "data.lock"
    with pytest.raises(ChecksumError, match="published MD5 is " + "0" * 32):
        verify_file(dest, md5="0" * 32, lock_file=lock)
    assert not lock.exists()
    good = hashlib.md5(b"truncated then padded").hexdigest()
    assert verify_file(dest, md5=good, lock_file=lock) == hashlib.sha256(b"truncated then padded").hexdigest()


def test_stalled_transfer_times_out_and_continues(tmp_path: Path, file_server: FileServer, payload: bytes) -> None:
    file_server.routes["a.bin"] = Route(payload, cut=4096, cut_times=1, stall_s=2.0)
    dest = tmp_path / "a.bin"
    download(file_server.url("a.bin"), dest, retries=1, timeout=0.5, backoff=0)
    assert file_server.headers[1]["Range"] == "bytes=4096-"
    assert dest.read_bytes() == payload
