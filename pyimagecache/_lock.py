"""A cross-process, cross-thread exclusive lock on a lock file (POSIX flock).

flock() locks belong to an open file description, so two threads that each open the lock file
exclude each other just as two processes do (fcntl.lockf would not). The lock dies with its
process, so a killed holder never leaves a stale lock behind.

The lock file exists only while someone holds or waits for it: the holder removes it when it
lets go, so no ``.lock`` is left beside a user's file. That is safe because every taker checks,
once the flock is its own, that the path still names the file it locked; a waiter that locked
a file already removed (its holder let go and unlinked it) starts over on the path's new file.
The holder writes its pid into the file, so a waiter can say whom it waits for.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Callable, Optional, Type

#: Called once, before blocking, with the pid of the process holding the lock (None when
#: the lock file does not say).
OnWait = Callable[[Optional[int]], None]


class FileLock:
    """Exclusive lock held while the ``with`` block runs. ``on_wait(pid)`` is called once when
    someone else holds it, before waiting.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "disk.raw.lock"
    >>> with FileLock(path):
    ...     path.read_text().strip() == str(os.getpid())
    True
    >>> path.exists()
    False
    """

    def __init__(self, path: Path, *, on_wait: Optional[OnWait] = None) -> None:
        self.path = Path(path)
        self.on_wait = on_wait
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Wait until the lock is ours (creating the lock file if needed)."""
        told = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if self.on_wait is not None and not told:
                        told = True
                        self.on_wait(_holder(fd))
                    fcntl.flock(fd, fcntl.LOCK_EX)
                if self._still_named(fd):
                    self._own(fd)
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # its holder removed it as we waited: lock the path's new file

    def try_acquire(self, *, create: bool = True) -> bool:
        """Take the lock if nobody holds it, without waiting. True when it is ours now, or
        when there is no lock file and ``create`` is False (then nobody can hold it)."""
        while True:
            flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                if create:
                    raise
                return True
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return False
                if self._still_named(fd):
                    self._own(fd)
                    return True
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def holder(self) -> Optional[int]:
        """The pid the lock file names (its holder's), if it names one."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            return _holder(fd)
        finally:
            os.close(fd)

    def release(self, *, remove: bool = True) -> None:
        """Let go; remove the lock file first (unless ``remove`` is False), while it is still
        ours, so that nobody is left waiting on a file no longer at the path."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if remove and self._still_named(fd):
                try:
                    os.unlink(self.path)
                except OSError:
                    pass  # a read-only directory: the empty file stays, harmless
            else:
                os.ftruncate(fd, 0)  # stays behind: say no one holds it
        except OSError:
            pass
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _still_named(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _own(self, fd: int) -> None:
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        except OSError:
            pass  # a lock file we may lock but not write (another user's): the lock still holds

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


def _holder(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0)
    except OSError:
        return None
    try:
        pid = int(text.strip() or b"0")
    except ValueError:
        return None
    return pid if pid > 0 else None


def in_use(path: Path) -> bool:
    """Whether someone holds the lock at ``path``, found without taking it or writing
    anything (a shared flock, let go at once); False when there is no lock file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing lets go of a shared lock we got
    return False
