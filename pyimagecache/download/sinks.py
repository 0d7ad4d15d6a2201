"""Where downloaded bytes go: a partial file, memory, or only hashes.

Each sink hashes what it keeps as it keeps it, so a verified download never reads its bytes a
second time. ``restart()`` forgets everything (the server sent a different file).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence

from .._sparse import WritebackPacer
from ..errors import DownloadError

CHUNK = 1 << 20


class Sink(Protocol):
    done: int

    def write(self, data: bytes) -> None: ...

    def restart(self) -> None: ...


class Hashes:
    """Several hashlib algorithms fed at once."""

    def __init__(self, algorithms: Sequence[str]) -> None:
        self.algorithms = tuple(algorithms)
        for name in self.algorithms:
            try:
                hashlib.new(name)
            except ValueError as exc:
                raise DownloadError(f"unknown hash algorithm {name!r}") from exc
        self.restart()

    def restart(self) -> None:
        self._hashes = [hashlib.new(name) for name in self.algorithms]

    def update(self, data: bytes) -> None:
        for h in self._hashes:
            h.update(data)

    def hexdigests(self) -> Dict[str, str]:
        return {name: h.hexdigest() for name, h in zip(self.algorithms, self._hashes)}

    def close(self) -> None:
        pass


class BackgroundHashes(Hashes):
    """Hashes fed on a worker thread, so hashing overlaps receiving and writing.

    hashlib releases the GIL on large buffers, so on two cores a verified download costs about
    what an unverified one does. At most QUEUE_DEPTH chunks wait (bounded memory).
    """

    QUEUE_DEPTH = 8

    def __init__(self, algorithms: Sequence[str]) -> None:
        self._queue: queue.Queue[Optional[bytes]] = queue.Queue(self.QUEUE_DEPTH)
        self._error: Optional[BaseException] = None
        super().__init__(algorithms)
        self._thread = threading.Thread(target=self._work, name="pyimagecache-hash", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                if self._error is None:
                    super().update(data)
            except BaseException as exc:  # kept for the caller; keep draining so put() never blocks
                self._error = exc
            finally:
                self._queue.task_done()

    def _sync(self) -> None:
        self._queue.join()
        if self._error is not None:
            raise self._error

    def update(self, data: bytes) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("BackgroundHashes used after close()")
        self._queue.put(data)

    def restart(self) -> None:
        self._sync()
        super().restart()

    def hexdigests(self) -> Dict[str, str]:
        self._sync()
        return super().hexdigests()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class FileSink:
    """Appends to the open partial file ``path`` (fd positioned at its end)."""

    def __init__(self, fd: int, path: Path, hashes: Hashes, done: int) -> None:
        self.fd = fd
        self.path = path
        self.hashes = hashes
        self.done = done
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
                self._writeback.wrote(n, self.done)
                self.done += n
                view = view[n:]
        except OSError as exc:
            raise DownloadError(
                f"cannot write {self.path}: {exc.strerror or exc} "
                f"(kept {self.done} bytes; the next call resumes)",
                path=str(self.path),
                done=self.done,
            ) from exc

    def restart(self) -> None:
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
