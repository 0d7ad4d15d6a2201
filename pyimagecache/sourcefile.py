"""The input file every image reader reads: complete on disk, or a download still arriving.

Readers never touch a file descriptor themselves; they call :meth:`SourceFile.pread_into`
(positional, so one file serves several threads) and learn the file's final ``size`` from
it. A :class:`GrowingFile` is the partial file of a download in progress: a read of bytes not
written yet waits for them, which is how ``ensure`` converts while it downloads. When the
download fails or starts over, every waiting and later read raises :class:`SourceChanged`.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import threading
from pathlib import Path
from typing import Any, Optional, Union

from ._sparse import pread_into

PathLike = Union[str, "os.PathLike[str]"]


def _file_error(exc: OSError, path: object) -> OSError:
    from .errors import file_error

    return file_error(exc, path)


class SourceChanged(Exception):
    """Internal: the growing file a conversion reads was abandoned (the download failed, or
    restarted with different bytes); whatever was converted from it must be thrown away."""


class DownloadCancelled(BaseException):
    """Internal: the conversion reading a growing file gave up (an error, a signal), so the
    download feeding it stops too; its partial file stays for the next run to resume.
    A BaseException, like KeyboardInterrupt, so that no retry loop mistakes it for a
    network failure."""


class SourceFile:
    """Positional reads of a complete file. Reads past ``size`` come back short.

    >>> with SourceFile.open("disk.qcow2") as f:  # doctest: +SKIP
    ...     magic = f.pread(4, 0)
    """

    def __init__(self, path: PathLike, fd: int, size: int) -> None:
        self.path = Path(path)
        self.fd = fd
        #: The file's length in bytes; for a growing file, the length it will have.
        self.size = size

    @classmethod
    def open(cls, path: PathLike) -> SourceFile:
        """Open the file at ``path``; an :class:`~pyimagecache.errors.ImageFileError` (also
        the matching OSError: FileNotFoundError, PermissionError...) when that fails."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _file_error(exc, path) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):  # opens fine on Linux; only its reads fail
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            return cls(path, fd, st.st_size)
        except OSError as exc:
            os.close(fd)
            raise _file_error(exc, path) from None
        except BaseException:
            os.close(fd)
            raise

    def pread_into(self, buf: bytearray, length: int, offset: int) -> int:
        """Read up to ``length`` bytes at ``offset`` into the start of ``buf``; short only at
        the end of the file. An OSError names the file (a directory, an I/O error)."""
        try:
            return pread_into(self.fd, buf, length, offset)
        except OSError as exc:
            raise _file_error(exc, exc.filename or self.path) from exc

    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (short only at the end of the file)."""
        buf = bytearray(length)
        got = self.pread_into(buf, length, offset)
        return bytes(buf) if got == length else bytes(buf[:got])

    def pread_padded(self, length: int, offset: int) -> bytes:
        """``length`` bytes at ``offset``; bytes past the end of the file read as zeros."""
        buf = bytearray(length)
        self.pread_into(buf, length, offset)
        return bytes(buf)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.path)!r} {self.size} bytes>"


class UnpackedSource(SourceFile):
    """The disk unpacked from a container, read through ``fd`` (an unlinked temporary file,
    gone once closed) but named after the ``container`` file it came from, whose format and
    allocated bytes it remembers for ``info``."""

    def __init__(self, container: SourceFile, fd: int) -> None:
        try:
            st = os.fstat(container.fd)
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        super().__init__(container.path, fd, size)
        head = container.pread(512, 0)
        from . import formats

        self.container = formats.detect(head)
        self.container_allocated = getattr(st, "st_blocks", 0) * 512


def as_source(src: Union[PathLike, SourceFile]) -> SourceFile:
    """``src`` itself when it is a :class:`SourceFile`, else the file at that path, opened."""
    return src if isinstance(src, SourceFile) else SourceFile.open(src)


class GrowingFile(SourceFile):
    """A file that a download is still appending to, up to a known final ``size``.

    The downloader calls :meth:`grew` as bytes land, :meth:`finish` when the file is complete,
    and :meth:`abandon` when it fails or restarts. Readers wait for the bytes they need; a read
    beyond ``size`` is short, as for a complete file.
    """

    def __init__(self, path: PathLike, size: int, written: int = 0) -> None:
        super().__init__(path, os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)), size)
        self._written = written
        self._complete = written >= size
        self._failure: Optional[str] = None
        self._cancelled = False
        self._cond = threading.Condition()
        #: The furthest offset a reader has waited for: how far a conversion is held up.
        self.wanted = 0

    @property
    def written(self) -> int:
        return self._written

    def grew(self, written: int) -> None:
        """The downloader wrote up to ``written``; raises DownloadCancelled once the reader
        has given up, which ends the download (keeping its partial file)."""
        if self._cancelled:
            raise DownloadCancelled()
        with self._cond:
            self._written = written
            if written >= self.wanted:
                self._cond.notify_all()

    def cancel(self) -> None:
        """The reader gives up: stop the download at its next write, wake every waiter."""
        with self._cond:
            self._cancelled = True
            if self._failure is None:
                self._failure = "the conversion was stopped"
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._written = self.size
            self._complete = True
            self._cond.notify_all()

    def abandon(self, reason: str) -> None:
        with self._cond:
            self._failure = reason
            self._cond.notify_all()

    def wait_for(self, end: int) -> None:
        """Return once bytes up to ``end`` (clipped to ``size``) are on disk."""
        end = min(end, self.size)
        with self._cond:
            while True:
                if self._failure is not None:
                    raise SourceChanged(self._failure)
                if self._complete or self._written >= end:
                    return
                self.wanted = max(self.wanted, end)
                self._cond.wait()

    def pread_into(self, buf: bytearray, length: int, offset: int) -> int:
        self.wait_for(offset + length)
        return super().pread_into(buf, length, offset)


class SourceStream(io.RawIOBase):
    """Sequential reads of a :class:`SourceFile` from ``start`` (waiting for a growing one),
    for the stream decompressors and tar, which want a file object.

    >>> stream = SourceStream(SourceFile.open("disk.tar.xz"))  # doctest: +SKIP
    """

    def __init__(self, source: SourceFile, start: int = 0) -> None:
        super().__init__()
        self._source = source
        self._pos = start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._source.size - self._pos))
        if want == 0:
            return 0
        got = self._source.pread_into(view, want, self._pos)  # type: ignore[arg-type]
        self._pos += got
        return got

    def tell(self) -> int:
        return self._pos
