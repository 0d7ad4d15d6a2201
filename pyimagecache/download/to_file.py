"""``fetch``: download to a file, resumable across calls and processes, verified, published
atomically.

Files beside ``dest``:

- ``<dest>.part``: the bytes so far, always a prefix of the resource described by
- ``<dest>.part.meta``: its validators (URL, strong ETag or Last-Modified, total), JSON;
- ``<dest>.part.lock``: flocked for the whole call, so concurrent fetches of one dest take turns;
  removed when the call ends (see :mod:`pyimagecache._lock`), so nothing is left beside dest.

A process that waited for the lock returns at once when, during its wait, another one published
dest (re-hashing it first when a digest is given). A dest that was already there when the call
started is downloaded again, unless :func:`fetch` was given a digest that dest already has:
then no request is made at all (as pooch does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .. import cachefiles
from .._atomic import fsync_dir, sync_fd
from .._lock import FileLock
from .._progress import ProgressCallback
from .._space import check_free_space
from ..errors import DownloadError
from ..hashing import Expected, Hashes, file_digests, hashes_for
from ..settings import DEFAULT, Settings, TimeoutArg
from . import partial
from .route import fill
from .sinks import RECV_BYTES, FileSink, Watcher

PathArg = Union[str, "os.PathLike[str]"]
#: Told where the partial file is and how long it will be once the total is known; returns
#: who to tell as it grows (ensure's converter), or None.
Watch = Callable[[Path, int, int], Optional[Watcher]]


def fetch(
    url: PathArg,
    dest: PathArg,
    *,
    sha256: Optional[str] = None,
    sha512: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    timeout: Optional[TimeoutArg] = None,
    retries: Optional[int] = None,
    ca_bundle: Optional[str] = None,
    settings: Optional[Settings] = None,
) -> Path:
    """Download ``url`` (http, https, file:// or a local path) to ``dest`` and return dest.

    The bytes are hashed as they are written to ``<dest>.part``; when ``sha256`` (64 hex
    digits) or ``sha512`` (128) is given and does not match, ChecksumMismatchError (naming the
    algorithm) is raised and nothing reaches dest; both are checked, in the same pass, when
    both are given. An interrupted download (a failed call, a killed process) resumes with an
    HTTP Range request on the next call when the server offers a strong ETag or Last-Modified.

    ``timeout`` is seconds to connect and the longest wait for the next chunk, or a
    (connect, read) pair; default (30, 60). ``retries`` failed attempts are retried with
    exponential backoff within the call (default 5). ``progress(done, total_or_None)`` is called
    at most ten times a second. ``ca_bundle`` replaces the system CA store for https.
    ``settings`` (a :class:`~pyimagecache.settings.Settings`) gives all of those at once; the
    keyword arguments override it.

    >>> fetch("https://example.org/disk.qcow2", "disk.qcow2", sha256="ab12...")  # doctest: +SKIP
    PosixPath('disk.qcow2')

    >>> import pathlib, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "a").write_bytes(b"hello")
    >>> pin = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    >>> fetch(tmp / "a", tmp / "b", sha256=pin).read_bytes()
    b'hello'
    """
    expected = Expected.parse(sha256, sha512)
    base = settings if settings is not None else DEFAULT
    settings = base.overridden(timeout, retries, ca_bundle)
    # dest is only ever renamed into place whole, so it is complete: hash it, no request.
    if (
        expected
        and os.path.isfile(dest)
        and _digests_if_matching(Path(dest), expected, expected.algorithms, os.fspath(url))
    ):
        from .._log import info

        info("%s already has the expected %s; not downloaded", dest, _names(expected))
        return Path(dest)
    fetch_verified(url, dest, expected, settings, progress)
    return Path(dest)


def _names(expected: Expected) -> str:
    return " and ".join(a.upper().replace("SHA", "SHA-") for a in expected.algorithms)


#: Every partial file a download of this process wrote to, in order (for the command line,
#: which says on Ctrl-C which ones the next run resumes from).
_STARTED: List[Path] = []


def partials_started() -> List[Path]:
    """The partial files this process's downloads wrote to (whatever became of them)."""
    return list(dict.fromkeys(_STARTED))


def resumable(part: Path) -> bool:
    """Whether the next download to this partial's dest continues from ``part``."""
    return partial.resumable(part, part.with_name(part.name + ".meta"))


def fetch_verified(
    url: PathArg,
    dest: PathArg,
    expected: Expected,
    settings: Settings,
    progress: Optional[ProgressCallback] = None,
    watch: Optional[Watch] = None,
    record: Sequence[str] = (),
    headers: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """:func:`fetch` with validated digests and settings; returns the digests of the file for
    the pinned algorithms and those in ``record``, computed in the same pass. ``watch``
    (ensure's overlap) is called once the partial file's final length is known, and told as
    it grows. ``headers`` go with every request (a registry's Authorization: dropped on a
    redirect to another origin)."""
    url_text = os.fspath(url)
    dest = Path(dest)
    _check_dest(dest)
    part = cachefiles.partial_of(dest)
    meta = cachefiles.partial_meta_of(dest)
    lock_path = cachefiles.partial_lock_of(dest)
    before = _identity(dest)
    lock = FileLock(lock_path)
    try:
        lock.acquire()
    except OSError as exc:
        raise _os_error("cannot lock", lock_path, exc, url_text) from exc
    try:
        now = _identity(dest)
        # Published by the process we waited for? Trust it only as far as we can check.
        wanted = tuple(dict.fromkeys((*expected.algorithms, *record)))
        if now is not None and now != before:
            done = _digests_if_matching(dest, expected, wanted, url_text)
            if done is not None:
                return done
        try:
            return _download(
                url_text, dest, part, meta, expected, wanted, settings, progress, watch, headers
            )
        except DownloadError as exc:
            _drop_if_empty(part, meta)
            if resumable(part):
                raise exc.with_message(f"{exc}; the next call resumes from {part}") from exc
            raise
        except BaseException:
            _drop_if_empty(part, meta)
            raise
    finally:
        lock.release()


def _download(
    url: str,
    dest: Path,
    part: Path,
    meta: Path,
    expected: Expected,
    wanted: Sequence[str],
    settings: Settings,
    progress: Optional[ProgressCallback],
    watch: Optional[Watch],
    headers: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _os_error("cannot create", part, exc, url) from exc
    _STARTED.append(part)
    hashes = hashes_for(Expected(), wanted)
    sink: Optional[FileSink] = None
    try:
        validators = partial.load(meta)
        if validators is not None and validators.url != url:
            validators = None  # another URL: those bytes are not ours to resume
        held = _resume_point(fd, part, hashes, validators, url)
        sink = FileSink(fd, part, hashes, held)
        if held and validators is not None and validators.total is not None:
            _starting(sink, validators.total, url, watch)

        def adopted(found: partial.Validators) -> None:
            _save_meta(meta, found, url)
            if found.total is not None and sink is not None:
                _starting(sink, found.total, url, watch)

        fill(
            url,
            sink,
            validators if held else None,
            settings,
            progress=progress,
            on_validators=adopted,
            path=str(part),
            headers=headers,
        )
        try:
            sync_fd(fd)
        except OSError as exc:
            raise _os_error("cannot flush", part, exc, url) from exc
        actual = hashes.hexdigests()
    except BaseException as exc:
        if sink is not None and sink.watcher is not None:
            sink.watcher.abandon(f"the download failed: {exc}")
        raise
    finally:
        os.close(fd)
        hashes.close()
    if not expected.matches(actual):
        _remove(part)
        partial.discard(meta)
        if sink.watcher is not None:
            sink.watcher.abandon(f"the download of {url} does not match its pinned digest")
        expected.check(actual, url, str(dest))
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise _os_error("cannot rename the download onto", dest, exc, url) from exc
    fsync_dir(dest.parent)
    partial.discard(meta)
    return actual


def _starting(sink: FileSink, total: int, url: str, watch: Optional[Watch]) -> None:
    """A body of ``total`` bytes is about to be written from ``sink.done``: check there is
    room for the rest before the first byte, and let a watcher follow it from here."""
    check_free_space(sink.path, total - sink.done, f"downloading {url}")
    if watch is not None and sink.watcher is None:
        sink.watcher = watch(sink.path, total, sink.done)


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
                data = os.read(fd, min(RECV_BYTES, keep - done))
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


def _digests_if_matching(
    dest: Path, expected: Expected, wanted: Sequence[str], url: str
) -> Optional[Dict[str, str]]:
    """The digests of ``dest`` when it matches what is pinned (None when it does not)."""
    try:
        actual = file_digests(dest, wanted) if wanted else {}
    except OSError as exc:
        raise _os_error("cannot read", dest, exc, url) from exc
    return actual if expected.matches(actual) else None


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
