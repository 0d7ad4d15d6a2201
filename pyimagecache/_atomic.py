"""Publish files atomically: write a hidden sibling, fsync it, rename it over the target.

A reader of the target therefore sees either the old file or the complete new one, never a
prefix, whatever happens to the writing process. With ``durable=False`` the fsyncs are skipped:
still atomic if the process dies, but after a power loss a new file may read as zeros (what
``cp`` gives); the cache always publishes durably. Leftover siblings of a killed writer match
``STALE_GLOB`` so that ``cache prune`` can find them.

:func:`sync_fd` is the one place that makes a file durable: every fsync of the package goes
through it, so that on macOS it is ``F_FULLFSYNC``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

# The temporary siblings are named where every other cache file name is.
from .cachefiles import TEMP_MARK, temp_sibling

__all__ = [
    "TEMP_MARK",
    "atomic_output",
    "fsync_dir",
    "fsync_path",
    "publish",
    "sync_fd",
    "temp_sibling",
]


def sync_fd(fd: int) -> None:
    """Flush ``fd``'s data and metadata to stable storage.

    macOS's fsync only hands the data to the drive, whose cache may lose it at a power loss;
    ``fcntl(F_FULLFSYNC)`` also flushes that cache. Where it is refused (some network and FUSE
    filesystems) fsync is the best there is, as SQLite does. ``F_FULLFSYNC`` is looked up at
    each call, not at import, so that tests can hide or inject it.

    >>> import tempfile
    >>> with tempfile.TemporaryFile() as f:
    ...     sync_fd(f.fileno())
    """
    import fcntl  # here: a cache hit imports this module (cachefiles) but never syncs

    full_fsync = getattr(fcntl, "F_FULLFSYNC", None)
    if full_fsync is not None:
        try:
            fcntl.fcntl(fd, full_fsync)
            return
        except OSError:
            pass
    os.fsync(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable. A no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # Windows, or a directory we may not open: the rename itself already happened.
    try:
        sync_fd(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """Make the contents of the file at ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        sync_fd(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, dst: Path, *, durable: bool = True) -> None:
    """Rename ``tmp`` onto ``dst``; when ``durable``, fsync tmp before and the directory after."""
    if durable:
        fsync_path(tmp)
    os.replace(tmp, dst)
    if durable:
        fsync_dir(dst.parent)


@contextlib.contextmanager
def atomic_output(dst: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path; on normal exit publish it as ``dst``, on error remove it.

    >>> with atomic_output(Path("disk.raw")) as tmp:  # doctest: +SKIP
    ...     tmp.write_bytes(b"...")
    """
    dst = Path(dst)
    tmp = temp_sibling(dst)
    try:
        yield tmp
        publish(tmp, dst, durable=durable)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
