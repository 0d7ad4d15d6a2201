"""``fetch``: download to a file, resumable across calls and processes, verified, published
atomically.

Files beside ``dest``:

- ``<dest>.part``: the bytes so far, always a prefix of the resource described by
- ``<dest>.part.meta``: its validators (URL, strong ETag or Last-Modified, total), JSON;
- ``<dest>.part.lock``: flocked for the whole call, so concurrent fetches of one dest take turns.

A process that waited for the lock returns at once when, during its wait, another one published
dest (re-hashing it first when ``sha256`` is given). A dest that was already there when the call
started is downloaded again: whether an existing file is good enough is the caller's decision.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Tuple, Union

from .._atomic import fsync_dir
from .._lock import FileLock
from .._progress import ProgressCallback
from ..errors import ChecksumMismatchError, DownloadError
from . import partial
from .local import copy_into, local_path
from .sinks import CHUNK, BackgroundHashes, FileSink, Hashes

#: Attempts after the first failure within one call (see transfer.PROGRESS_CREDIT).
DEFAULT_RETRIES = 5
#: Connect within 30 s; give up on a connection when no byte arrives for 60 s (the read
#: timeout bounds the gap between two chunks, not the whole transfer).
DEFAULT_TIMEOUT: Tuple[float, float] = (30.0, 60.0)

_HEX64 = re.compile(r"[0-9a-f]{64}")

PathArg = Union[str, "os.PathLike[str]"]


def fetch(
    url: PathArg,
    dest: PathArg,
    *,
    sha256: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    timeout: Union[float, Tuple[float, float]] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    ca_bundle: Optional[str] = None,
) -> Path:
    """Download ``url`` (http, https, file:// or a local path) to ``dest`` and return dest.

    The bytes are hashed as they are written to ``<dest>.part``; when ``sha256`` (64 hex digits)
    is given and does not match, ChecksumMismatchError is raised and nothing reaches dest. An
    interrupted download (a failed call, a killed process) resumes with an HTTP Range request on
    the next call when the server offers a strong ETag or Last-Modified.

    ``timeout`` is seconds to connect and the longest wait for the next chunk, or a
    (connect, read) pair; default (30, 60). ``retries`` failed attempts are retried with
    exponential backoff within the call (default 5). ``progress(done, total_or_None)`` is called
    at most ten times a second. ``ca_bundle`` replaces the system CA store for https.

    >>> fetch("https://example.org/disk.qcow2", "disk.qcow2", sha256="ab12...")  # doctest: +SKIP
    PosixPath('disk.qcow2')
    """
    url_text = os.fspath(url)
    source = local_path(url)  # a PathLike is a path even if it looks like "name:..."
    dest = Path(dest)
    expected = _normalise_sha256(sha256)
    _check_dest(dest)
    part = dest.with_name(dest.name + ".part")
    meta = partial.meta_path(part)
    lock_path = dest.with_name(dest.name + ".part.lock")
    before = _identity(dest)
    lock = FileLock(lock_path)
    try:
        lock.acquire()
    except OSError as exc:
        raise _os_error("cannot lock", lock_path, exc, url_text) from exc
    try:
        now = _identity(dest)
        # Published by the process we waited for? Trust it only as far as we can check.
        published = now is not None and now != before
        if published and (expected is None or _hash_file(dest, url_text) == expected):
            return dest
        try:
            _download(
                url_text, source, dest, part, meta, expected, progress, timeout, retries, ca_bundle
            )
        except BaseException:
            _drop_if_empty(part, meta)
            raise
        return dest
    finally:
        lock.release()


def _download(
    url: str,
    source: Optional[Path],
    dest: Path,
    part: Path,
    meta: Path,
    expected: Optional[str],
    progress: Optional[ProgressCallback],
    timeout: Union[float, Tuple[float, float]],
    retries: int,
    ca_bundle: Optional[str],
) -> None:
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as exc:
        raise _os_error("cannot create", part, exc, url) from exc
    hashes = BackgroundHashes(["sha256"]) if expected else Hashes([])
    try:
        if source is not None:
            sink = FileSink(fd, part, hashes, 0)
            partial.discard(meta)
            copy_into(source, sink, progress)
        else:
            validators = partial.load(meta)
            if validators is not None and validators.url != url:
                validators = None  # another URL: those bytes are not ours to resume
            held = _resume_point(fd, part, hashes, validators, url)
            sink = FileSink(fd, part, hashes, held)
            from .transfer import download  # urllib3 only for http(s)

            download(
                url,
                sink,
                validators if held else None,
                timeout=timeout,
                retries=retries,
                ca_bundle=ca_bundle,
                progress=progress,
                on_validators=lambda v: _save_meta(meta, v, url),
                resume_hint=f"the next call resumes from {part}",
                path=str(part),
            )
        try:
            os.fsync(fd)
        except OSError as exc:
            raise _os_error("cannot flush", part, exc, url) from exc
        actual = hashes.hexdigests().get("sha256")
    finally:
        os.close(fd)
        hashes.close()
    if expected is not None and actual != expected:
        _remove(part)
        partial.discard(meta)
        raise ChecksumMismatchError(url, expected, str(actual), str(dest))
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise _os_error("cannot rename the download onto", dest, exc, url) from exc
    fsync_dir(dest.parent)
    partial.discard(meta)


def _resume_point(
    fd: int, part: Path, hashes: Hashes, validators: Optional[partial.Validators], url: str
) -> int:
    """Bytes of ``part`` worth keeping (hashed into ``hashes``); the rest is cut off."""
    try:
        size = os.fstat(fd).st_size
        usable = validators is not None and validators.if_range is not None
        if usable and validators is not None and validators.total is not None:
            usable = size <= validators.total
        keep = size if usable else 0
        if keep != size:
            os.ftruncate(fd, keep)
        done = 0
        if hashes.algorithms:
            while done < keep:
                data = os.read(fd, min(CHUNK, keep - done))
                if not data:
                    break
                hashes.update(data)
                done += len(data)
        os.lseek(fd, keep, os.SEEK_SET)
        return keep
    except OSError as exc:
        raise _os_error("cannot read back", part, exc, url) from exc


def _save_meta(meta: Path, validators: partial.Validators, url: str) -> None:
    try:
        partial.save(meta, validators)
    except OSError as exc:
        raise _os_error("cannot write", meta, exc, url) from exc


def _check_dest(dest: Path) -> None:
    if dest.is_dir():
        raise DownloadError(f"{dest} is a directory, not a file name", path=str(dest))
    parent = dest.parent
    if not parent.is_dir():
        raise DownloadError(f"{parent} (directory of {dest.name}) does not exist", path=str(dest))


def _identity(path: Path) -> Optional[Tuple[int, int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _hash_file(path: Path, url: str) -> str:
    hashes = Hashes(["sha256"])
    try:
        with open(path, "rb", buffering=0) as f:
            for data in iter(lambda: f.read(CHUNK), b""):
                hashes.update(data)
    except OSError as exc:
        raise _os_error("cannot read", path, exc, url) from exc
    return hashes.hexdigests()["sha256"]


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _HEX64.fullmatch(value):
        raise DownloadError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


def _drop_if_empty(part: Path, meta: Path) -> None:
    """A failed call that kept no byte leaves no partial behind."""
    try:
        if os.stat(part).st_size == 0:
            os.unlink(part)
            partial.discard(meta)
    except OSError:
        pass


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _os_error(what: str, path: Path, exc: OSError, url: str) -> DownloadError:
    return DownloadError(f"{what} {path}: {exc.strerror or exc}", url=url, path=str(path))
