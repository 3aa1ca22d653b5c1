"""Downloads that either complete and verify, or leave nothing behind.

A data set of many gigabytes is fetched once and then trusted by every later step, so a
download must never leave a partial or corrupted file where the workflow expects a result:

* the body is streamed to a temporary file beside the destination and renamed into place only
  when it is complete (size checked against ``Content-Length``) and its checksum agrees;
* connection errors and truncated bodies are retried with exponential backoff;
* the archive's sha256 is pinned: given explicitly, or recorded in a small lock file on first
  download and checked on every later call (also for a file a user placed by hand);
* when nothing works (offline machine, blocked host) the error says where to put the file by
  hand, so the workflow can still run.

The standard library (``urllib``) is enough here; no new dependency is needed.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import yaml

from mrct.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_USER_AGENT = "mrct-download/1 (python urllib)"


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL and the hand-placement path."""


class ChecksumError(DownloadError):
    """The content's sha256 differs from the pinned one; nothing is kept."""


class _Truncated(OSError):
    """The connection ended before ``Content-Length`` bytes arrived (retried)."""


class _Failed(Exception):
    """Every attempt failed; carries the last error to the public DownloadError."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(str(cause))
        self.cause = cause


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so that archives of many GB fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- lock file ------------------------------------------------------------------------------


def _lock_key(dest: Path, lock_file: Path) -> str:
    """The lock file's key for ``dest``: relative to the lock's folder, so a moved tree still matches."""
    dest_abs = dest.resolve()
    base = lock_file.resolve().parent
    try:
        return dest_abs.relative_to(base).as_posix()
    except ValueError:
        return dest_abs.as_posix()


def read_lock(lock_file: str | Path) -> dict[str, str]:
    """The lock file's map ``file -> sha256``; empty when the file does not exist yet."""
    lock_file = Path(lock_file)
    if not lock_file.exists():
        return {}
    data = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{lock_file}: expected a map 'file: sha256', got {type(data).__name__}")
    return {str(k): v.lower() for k, v in data.items()}


def _record_in_lock(lock_file: Path, dest: Path, digest: str) -> None:
    """Add ``dest: digest`` to the lock file (read, update, atomic rewrite: one writer per lock)."""
    entries = read_lock(lock_file)
    entries[_lock_key(dest, lock_file)] = digest
    header = "# sha256 of downloaded files, recorded on first download and verified afterwards.\n"
    write_text_atomic(lock_file, header + yaml.safe_dump(entries, sort_keys=True))
    log.info("recorded sha256 %s of %s in %s", digest, dest, lock_file)


def _expected_digest(dest: Path, sha256: str | None, lock_file: Path | None) -> tuple[str | None, str]:
    """The pinned sha256 of ``dest`` and where it came from (argument or lock file)."""
    if sha256:
        return sha256.lower(), "the sha256 argument"
    if lock_file is not None:
        recorded = read_lock(lock_file).get(_lock_key(dest, lock_file))
        if recorded:
            return recorded, f"lock file {lock_file}"
    return None, ""


# -- verification -----------------------------------------------------------------------------


def verify_file(
    dest: str | Path, *, sha256: str | None = None, lock_file: str | Path | None = None, url: str = ""
) -> str:
    """Check an existing file against the pinned sha256, or record it when none is pinned yet.

    Returns the file's sha256. Raises ChecksumError (without touching the file: it may be the
    user's own copy) when it does not match.
    """
    dest = Path(dest)
    lock = Path(lock_file) if lock_file is not None else None
    expected, source = _expected_digest(dest, sha256, lock)
    log.info("verifying sha256 of %s", dest)
    got = sha256_of(dest)
    if expected is not None and got != expected:
        raise ChecksumError(
            f"{dest}: sha256 mismatch for {url or 'this file'}: expected {expected} ({source}), "
            f"got {got}. Delete the file to download it again, or fix the pinned checksum."
        )
    if lock is not None and expected is None:
        _record_in_lock(lock, dest, got)
    return got


# -- transfer ---------------------------------------------------------------------------------


def _stream_to(response: http.client.HTTPResponse, handle: BinaryIO, url: str) -> tuple[int, str]:
    """Copy the body to ``handle``; return (bytes, sha256). Raise _Truncated on a short body."""
    length_header = response.headers.get("Content-Length")
    expected = int(length_header) if length_header and length_header.isdigit() else None
    digest = hashlib.sha256()
    received = 0
    next_report = 0.0
    while True:
        chunk = response.read(CHUNK_BYTES)
        if not chunk:
            break
        handle.write(chunk)
        digest.update(chunk)
        received += len(chunk)
        if expected and received / expected >= next_report:
            log.info("%s: %d of %d bytes (%.0f %%)", url, received, expected, 100 * received / expected)
            next_report += 0.1
    if expected is not None and received != expected:
        raise _Truncated(f"connection ended after {received} of {expected} bytes (Content-Length)")
    log.info("%s: received %d bytes", url, received)
    return received, digest.hexdigest()


def _fetch_once(url: str, tmp: Path, timeout: float) -> str:
    """One attempt: stream ``url`` into ``tmp``; return its sha256."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as handle:
        _, digest = _stream_to(response, handle, url)
        handle.flush()
        os.fsync(handle.fileno())
    return digest


def _is_retryable(error: BaseException) -> bool:
    """Connection problems and server errors are worth another try; 4xx answers are not."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code in (408, 429)
    return isinstance(error, (OSError, http.client.HTTPException))


def _fetch_with_retries(
    url: str, tmp: Path, retries: int, timeout: float, backoff: float, sleep: Callable[[float], None]
) -> str:
    last_error: BaseException | None = None
    for attempt in range(1, retries + 1):
        try:
            log.info("downloading %s (attempt %d of %d)", url, attempt, retries)
            return _fetch_once(url, tmp, timeout)
        except (OSError, http.client.HTTPException) as error:
            last_error = error
            log.warning("download of %s failed on attempt %d: %s", url, attempt, error)
            if not _is_retryable(error) or attempt == retries:
                break
            delay = backoff * 2 ** (attempt - 1)
            log.info("retrying in %.1f s", delay)
            sleep(delay)
    raise _Failed(last_error)


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    lock_file: str | Path | None = None,
    retries: int = 3,
    timeout: float = 60,
    backoff: float = 1.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it; return ``dest``.

    The sha256 must equal ``sha256`` when given, else the one recorded for ``dest`` in
    ``lock_file``; when neither exists the computed one is recorded in ``lock_file``. An
    existing ``dest`` (an earlier download, or a file placed by hand) is verified the same way
    and not downloaded again.
    """
    if retries < 1:
        raise ValueError(f"retries must be >= 1, got {retries}")
    dest = Path(dest)
    lock = Path(lock_file) if lock_file is not None else None
    if dest.exists():
        log.info("%s exists; verifying it instead of downloading %s", dest, url)
        verify_file(dest, sha256=sha256, lock_file=lock, url=url)
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        try:
            got = _fetch_with_retries(url, tmp, retries, timeout, backoff, time.sleep)
        except _Failed as failure:
            raise DownloadError(
                f"could not download {url}: {failure.cause!r} (after {retries} attempt(s)). "
                f"If this machine is offline or the host is blocked, download the file elsewhere "
                f"and place it by hand at {dest.resolve()}, then rerun."
            ) from failure.cause
        expected, source = _expected_digest(dest, sha256, lock)
        if expected is not None and got != expected:
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {expected} ({source}), got {got}; "
                f"nothing was kept at {dest}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("saved %s (sha256 %s)", dest, got)
    if lock is not None and expected is None:
        _record_in_lock(lock, dest, got)
    return dest
