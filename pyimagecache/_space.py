"""Free space, checked before work starts: a download or conversion that cannot fit fails at
once, naming the path and both numbers, instead of filling the disk and failing half-way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .errors import InsufficientSpaceError

PathLike = Union[str, "os.PathLike[str]"]


def free_bytes(path: PathLike) -> Optional[int]:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (or its
    nearest existing parent); None where the platform cannot say."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except (AttributeError, OSError):
        return None
    return st.f_bavail * st.f_frsize


def check_free_space(path: PathLike, needed: int, what: str = "") -> None:
    """Raise :class:`InsufficientSpaceError` when fewer than ``needed`` bytes are free where
    ``path`` will be written.

    >>> check_free_space("/tmp/disk.raw", 1 << 70)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pyimagecache.errors.InsufficientSpaceError: not enough free space at /tmp/disk.raw: ...
    """
    if needed <= 0:
        return
    free = free_bytes(Path(path).parent)
    if free is not None and needed > free:
        raise InsufficientSpaceError(str(path), needed, free, what)
