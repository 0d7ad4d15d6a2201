"""A cross-process, cross-thread exclusive lock on a lock file (POSIX flock).

flock() locks belong to an open file description, so two threads that each open the lock file
exclude each other just as two processes do (fcntl.lockf would not). The lock dies with its
process, so a killed holder never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Optional, Type


class FileLock:
    """Exclusive lock held while the ``with`` block runs.

    >>> with FileLock(Path("/tmp/disk.raw.lock")):  # doctest: +SKIP
    ...     pass
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Wait until the lock is ours (creating the lock file if needed)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def try_acquire(self, *, create: bool = True) -> bool:
        """Take the lock if nobody holds it, without waiting. True when it is ours now, or
        when there is no lock file and ``create`` is False (then nobody can hold it)."""
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()
