"""Downloads that either complete and verify, or leave nothing under the final name.

A data set of many gigabytes is fetched once and then trusted by every later step, so a
download must never leave a partial or corrupted file where the workflow expects a result:

* the body is streamed to ``.<name>.part`` beside the destination and renamed into place only
  when it is complete (size checked against ``Content-Length``) and its checksums agree;
* a dropped connection or a timeout continues from the bytes on disk with an HTTP ``Range``
  request (206: append; a server that answers 200 sends the whole file again, so it starts
  over); the partial file survives a failed call, so a rerun continues too;
* server errors are retried with exponential backoff, or after the ``Retry-After`` the server
  asks for (at most ``MAX_RETRY_AFTER_S``); a try that brought new bytes does not count;
* progress (bytes, rate, time left) is logged every ``PROGRESS_INTERVAL_S`` seconds;
* a published md5 (Zenodo lists one per file) is checked before the file gets its name, and
  the sha256 is pinned: given explicitly, or recorded in a small lock file on first download
  and checked on every later call (also for a file a user placed by hand);
* when nothing works (offline machine, blocked host) the error says where to put the file by
  hand, so the workflow can still run.

The standard library (``urllib``) is enough here; no new dependency is needed.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mrct.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_USER_AGENT = "mrct-download/1 (python urllib)"
#: Longest wait a server's Retry-After may impose per try (seconds); a longer ask waits this long.
MAX_RETRY_AFTER_S = 600
#: Continuations (tries that brought new bytes) per call at most: a server that drops every few
#: kilobytes is not worth thousands of requests; a rerun continues from the bytes on disk.
MAX_CONTINUATIONS = 100
#: Seconds between progress lines in the log.
PROGRESS_INTERVAL_S = 30.0


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL and the hand-placement path."""


class ChecksumError(DownloadError):
    """The content's md5 or sha256 differs from the pinned one; nothing is kept."""


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


def digests_of(path: str | Path) -> dict[str, str]:
    """Hex md5 and sha256 of a file in one pass (an archive of 14.5 GB is read once, not twice)."""
    digests = {"md5": hashlib.md5(usedforsecurity=False), "sha256": hashlib.sha256()}
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def _check_md5(got: str, md5: str | None, url: str, where: str) -> None:
    """Raise ChecksumError when ``got`` differs from the published ``md5`` (if one is given)."""
    if md5 and got != md5.lower():
        raise ChecksumError(
            f"MD5 mismatch for {url or 'this file'}: the published MD5 is {md5.lower()}, {where} has {got}. "
            "The transfer was corrupted, or the file on the server is not the one the pin names. Download it "
            "again (delete the file first if you placed it by hand); if the MD5 differs again, compare the pin "
            "with the checksum listed on the record's page and fix the pin."
        )


def verify_file(
    dest: str | Path, *, sha256: str | None = None, lock_file: str | Path | None = None, url: str = "",
    md5: str | None = None,
) -> str:
    """Check an existing file against the published md5 and the pinned sha256, or record the sha256
    when none is pinned yet.

    Returns the file's sha256. Raises ChecksumError (without touching the file: it may be the
    user's own copy) when either does not match; the md5 is checked first, so that a corrupt
    file is never recorded as the reference of later runs.
    """
    dest = Path(dest)
    lock = Path(lock_file) if lock_file is not None else None
    expected, source = _expected_digest(dest, sha256, lock)
    log.info("verifying %s of %s", "md5 and sha256" if md5 else "sha256", dest)
    got = digests_of(dest) if md5 else {"sha256": sha256_of(dest)}
    if md5:
        _check_md5(got["md5"], md5, url, str(dest))
    if expected is not None and got["sha256"] != expected:
        raise ChecksumError(
            f"{dest}: sha256 mismatch for {url or 'this file'}: expected {expected} ({source}), "
            f"got {got['sha256']}. Delete the file to download it again, or fix the pinned checksum."
        )
    if lock is not None and expected is None:
        _record_in_lock(lock, dest, got["sha256"])
    return got["sha256"]


# -- transfer ---------------------------------------------------------------------------------


class _Progress:
    """Logs bytes, rate and time left every ``interval`` seconds (a 14.5 GB transfer takes hours)."""

    def __init__(self, url: str, done: int, total: int | None, interval: float) -> None:
        self.url, self.total, self.interval = url, total, interval
        self.start_bytes = done
        self.start = self.last = time.monotonic()

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        rate = (done - self.start_bytes) / max(now - self.start, 1e-9)
        if self.total:
            left = (self.total - done) / rate if rate > 0 else float("inf")
            log.info("%s: %s of %s (%.1f %%), %s/s, %s left", self.url, _size(done), _size(self.total),
                     100 * done / self.total, _size(rate), _duration(left))
        else:
            log.info("%s: %s, %s/s", self.url, _size(done), _size(rate))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


@dataclass
class _Partial:
    """The bytes of an unfinished download on disk (``.<name>.part``) and what they were fetched from.

    The sidecar (``.<name>.part.json``) holds the URL and the server's validators (ETag,
    Last-Modified), sent as ``If-Range`` on resumption: a server whose file changed answers with
    the whole new file (200) instead of a tail that would not fit the bytes already here.
    """

    path: Path
    meta: Path
    url: str
    validator: str | None = None
    total: int | None = None

    @classmethod
    def beside(cls, dest: Path, url: str) -> _Partial:
        partial = cls(dest.parent / f".{dest.name}.part", dest.parent / f".{dest.name}.part.json", url)
        if partial.path.exists():
            try:
                meta = json.loads(partial.meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                meta = {}
            if meta.get("url") == url:
                partial.validator, partial.total = meta.get("validator"), meta.get("total")
                log.info("%s: %s of an earlier download on disk; continuing it", partial.path, _size(partial.size()))
            else:
                log.info("%s: left by a download of another URL (or without a record); starting over", partial.path)
                partial.path.unlink()
        return partial

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def save_meta(self) -> None:
        write_text_atomic(self.meta, json.dumps({"url": self.url, "validator": self.validator, "total": self.total}))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta.unlink(missing_ok=True)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _open(url: str, partial: _Partial, timeout: float) -> tuple[http.client.HTTPResponse | None, int]:
    """Ask for the rest of the file; return (response, offset its body starts at).

    ``None`` as response: the bytes on disk are already the whole file (416 with their size).
    """
    offset = partial.size()
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if partial.validator:
            headers["If-Range"] = partial.validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            match = re.fullmatch(r"bytes \*/(\d+)", error.headers.get("Content-Range", ""))
            error.close()
            if match and int(match.group(1)) == offset:
                return None, offset
            log.warning("%s: the server refused the range from byte %d; starting over", url, offset)
            partial.remove()
            return _open(url, partial, timeout)
        raise
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            partial.total = int(match.group(3)) if match.group(3) != "*" else None
            log.info("%s: continuing from byte %d (206 Partial Content)", url, offset)
            return response, offset
        response.close()
        log.warning("%s: a partial answer that does not start at byte %d; starting over", url, offset)
        partial.remove()
        return _open(url, partial, timeout)
    if offset:
        log.info("%s: the server sent the whole file (status %d, Range not honoured); starting over", url,
                 response.status)
    length = response.headers.get("Content-Length")
    partial.total = int(length) if length and length.isdigit() else None
    partial.validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
    return response, 0


def _fetch_once(url: str, partial: _Partial, timeout: float, progress_interval: float) -> None:
    """One request: append the rest of the file to ``partial`` (or rewrite it); raise on a short body."""
    response, offset = _open(url, partial, timeout)
    if response is None:
        return
    with response, open(partial.path, "r+b" if offset else "wb") as handle:
        handle.truncate(offset)
        handle.seek(offset)
        partial.save_meta()
        progress = _Progress(url, offset, partial.total, progress_interval)
        done = offset
        try:
            # read1: whatever has arrived (up to a chunk), so that bytes received before a
            # timeout are on disk to continue from, not lost in a half-filled read buffer.
            while chunk := response.read1(CHUNK_BYTES):
                handle.write(chunk)
                done += len(chunk)
                progress.update(done)
        finally:
            handle.flush()
            os.fsync(handle.fileno())
            progress.update(done, force=True)
    if partial.total is not None and done != partial.total:
        raise _Truncated(f"connection ended after {done} of {partial.total} bytes (Content-Length)")


def _is_retryable(error: BaseException) -> bool:
    """Connection problems and server errors are worth another try; 4xx answers are not."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500 or error.code in (408, 429)
    return isinstance(error, (OSError, http.client.HTTPException))


def retry_after_s(error: BaseException) -> float | None:
    """Seconds a 429/503 answer's ``Retry-After`` asks for (a number or an HTTP date); None if absent."""
    if not isinstance(error, urllib.error.HTTPError) or error.headers is None:
        return None
    value = (error.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _fetch_with_retries(url: str, partial: _Partial, retries: int, timeout: float, backoff: float,
                        sleep: Callable[[float], None], progress_interval: float) -> None:
    """Fetch until complete. A failed attempt that left more bytes on disk than any before it
    does not use up a try: a 14.5 GB transfer over a link that drops every hour still ends,
    while a server that sends nothing new stops after ``retries`` such tries (and one that
    drops all the time after ``MAX_CONTINUATIONS``)."""
    last_error: BaseException | None = None
    failures = continuations = 0
    attempt = 0
    best = partial.size()
    while True:
        attempt += 1
        try:
            log.info("downloading %s (request %d; %d of %d tries used)", url, attempt, failures, retries)
            _fetch_once(url, partial, timeout, progress_interval)
            return
        except (OSError, http.client.HTTPException) as error:
            last_error = error
            log.warning("download of %s failed on request %d: %s", url, attempt, error)
            if not _is_retryable(error):
                break
            if partial.size() > best:
                best = partial.size()
                failures = 0
                continuations += 1
                if continuations > MAX_CONTINUATIONS:
                    break
                delay = 0.0
            else:
                failures += 1
                if failures >= retries:
                    break
                delay = backoff * 2 ** (failures - 1)
            asked = retry_after_s(error)
            if asked is not None:
                delay = min(asked, MAX_RETRY_AFTER_S)
                log.info("the server asks to retry after %.0f s (waiting %.0f s, at most %d)", asked, delay,
                         MAX_RETRY_AFTER_S)
            if delay:
                log.info("retrying in %.1f s", delay)
                sleep(delay)
    raise _Failed(last_error)


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    lock_file: str | Path | None = None,
    retries: int = 3,
    timeout: float = 60,
    backoff: float = 1.0,
    progress_interval: float = PROGRESS_INTERVAL_S,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it; return ``dest``.

    The md5 must equal ``md5`` when given (a published checksum), and the sha256 must equal
    ``sha256`` when given, else the one recorded for ``dest`` in ``lock_file``; when neither
    exists the computed one is recorded in ``lock_file``. An existing ``dest`` (an earlier
    download, or a file placed by hand) is verified the same way and not downloaded again.

    The bytes received so far stay on disk beside ``dest`` (``.<name>.part``) until the file is
    complete: a dropped connection or a timeout continues from them with an HTTP Range request,
    within this call and in a later one, and only a wrong checksum deletes them.
    """
    if retries < 1:
        raise ValueError(f"retries must be >= 1, got {retries}")
    dest = Path(dest)
    lock = Path(lock_file) if lock_file is not None else None
    if dest.exists():
        log.info("%s exists; verifying it instead of downloading %s", dest, url)
        verify_file(dest, sha256=sha256, lock_file=lock, url=url, md5=md5)
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _Partial.beside(dest, url)
    try:
        _fetch_with_retries(url, partial, retries, timeout, backoff, time.sleep, progress_interval)
    except _Failed as failure:
        kept = partial.size()
        raise DownloadError(
            f"could not download {url}: {failure.cause!r} (after {retries} tries without progress). "
            + (f"The {kept} bytes received are kept in {partial.path}; a rerun continues from them. " if kept else "")
            + f"If this machine is offline or the host is blocked, download the file elsewhere "
            f"and place it by hand at {dest.resolve()}, then rerun."
        ) from failure.cause
    log.info("%s: complete (%s); checking its checksums", url, _size(partial.size()))
    got = digests_of(partial.path)
    expected, source = _expected_digest(dest, sha256, lock)
    try:
        _check_md5(got["md5"], md5, url, "the downloaded file")
        if expected is not None and got["sha256"] != expected:
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {expected} ({source}), got {got['sha256']}; "
                f"nothing was kept at {dest}"
            )
    except ChecksumError:
        partial.remove()  # continuing from wrong bytes would give the same wrong file
        raise
    os.replace(partial.path, dest)
    partial.meta.unlink(missing_ok=True)
    log.info("saved %s (md5 %s, sha256 %s)", dest, got["md5"], got["sha256"])
    if lock is not None and expected is None:
        _record_in_lock(lock, dest, got["sha256"])
    return dest
