"""mrct.io.download against a real HTTP server on 127.0.0.1 (see the file_server fixture)."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

import pytest
import yaml
from conftest import FileServer, Route

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


def test_connection_cut_mid_file_leaves_no_partial_output(
    tmp_path: Path, file_server: FileServer, payload: bytes
) -> None:
    file_server.routes["Task1.zip"] = Route(payload, cut=len(payload) // 2)
    dest = tmp_path / "Task1.zip"
    url = file_server.url("Task1.zip")
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        download(url, dest, lock_file=tmp_path / "x.lock", retries=3, backoff=0)
    assert "Content-Length" in str(info.value)
    assert len(file_server.requests) == 3, "a truncated body is retried"
    assert not dest.exists()
    assert _leftovers(tmp_path, dest) == []
    assert not (tmp_path / "x.lock").exists(), "nothing is recorded for a failed download"


def test_truncation_then_success_is_retried(tmp_path: Path, file_server: FileServer, payload: bytes) -> None:
    """A first cut attempt followed by a good one ends with the complete file."""
    file_server.routes["f.bin"] = Route(payload, cut=1000, cut_times=1)
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
