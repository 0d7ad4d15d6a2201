"""Where downloaded bytes go: a partial file, memory, or only hashes.

Each sink hashes what it keeps as it keeps it, so a verified download never reads its bytes a
second time. ``restart()`` forgets everything (the server sent a different file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Protocol

from .._sparse import WritebackPacer
from ..errors import DownloadError
from ..hashing import Hashes

#: Bytes asked of the network or a local file per read.
RECV_BYTES = 1 << 20


class Watcher(Protocol):
    """Told how far a partial file has grown, and when its bytes stop being a prefix of the
    final file (a restart): a conversion reading the file while it grows listens."""

    def grew(self, written: int) -> None: ...

    def abandon(self, reason: str) -> None: ...


class Sink(Protocol):
    done: int

    def write(self, data: bytes) -> None: ...

    def restart(self) -> None: ...


class FileSink:
    """Appends to the open partial file ``path`` (fd positioned at its end)."""

    def __init__(
        self, fd: int, path: Path, hashes: Hashes, done: int, watcher: Optional[Watcher] = None
    ) -> None:
        self.fd = fd
        self.path = path
        self.hashes = hashes
        self.done = done
        self.watcher = watcher
        # Without this a 1 GiB download sits dirty in the page cache and the final fsync waits
        # for all of it; advising each window just written also keeps a big image from
        # evicting everything else from the cache.
        self._writeback = WritebackPacer(fd)

    def write(self, data: bytes) -> None:
        # Hashed first, so a background hasher works while we write. Should the write fail,
        # the call ends (DownloadError) and that hash state is never used.
        self.hashes.update(data)
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                if self.watcher is None:
                    # Not while a converter reads the file as it grows: advising the kernel
                    # to drop what was written would send those reads to the disk.
                    self._writeback.wrote(n, self.done)
                self.done += n
                view = view[n:]
        except OSError as exc:
            raise DownloadError(
                f"cannot write {self.path}: {exc.strerror or exc} (kept {self.done} bytes)",
                path=str(self.path),
                done=self.done,
            ) from exc
        if self.watcher is not None:
            self.watcher.grew(self.done)

    def restart(self) -> None:
        if self.watcher is not None:
            self.watcher.abandon(f"the download of {self.path.name} started over")
        try:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
        except OSError as exc:
            raise DownloadError(
                f"cannot truncate {self.path}: {exc.strerror or exc}", path=str(self.path)
            ) from exc
        self.done = 0
        self._writeback = WritebackPacer(self.fd)
        self.hashes.restart()


class MemorySink:
    """Keeps the body in memory, refusing more than ``limit`` bytes."""

    def __init__(self, limit: int, url: str) -> None:
        self.limit = limit
        self.url = url
        self.done = 0
        self._parts: List[bytes] = []

    def write(self, data: bytes) -> None:
        if self.done + len(data) > self.limit:
            raise DownloadError(
                f"{self.url} is larger than the {self.limit} bytes allowed", url=self.url
            )
        self._parts.append(data)
        self.done += len(data)

    def restart(self) -> None:
        self._parts.clear()
        self.done = 0

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class HashSink:
    """Keeps nothing but the digests."""

    def __init__(self, hashes: Hashes) -> None:
        self.hashes = hashes
        self.done = 0

    def write(self, data: bytes) -> None:
        self.hashes.update(data)
        self.done += len(data)

    def restart(self) -> None:
        self.hashes.restart()
        self.done = 0
