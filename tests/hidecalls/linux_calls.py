"""The Linux-only parts of ``os`` and ``fcntl``, and how to make them disappear.

pyimagecache supports macOS, but no Mac runs its tests. ``pytest --hide-linux-calls`` (see
tests/conftest.py) calls :func:`hide` before pyimagecache is imported, in the test process and,
through ``sitecustomize.py`` beside this file, in every Python child, so that each fallback the
package keeps for macOS runs on Linux. The lists hold what CPython's documentation marks Linux
(or "some Unix") and typeshed leaves out of ``sys.platform == "darwin"``, starting with what
pyimagecache uses; a name this Python does not have is skipped.
"""

from __future__ import annotations

import fcntl
import os
from types import ModuleType
from typing import Dict, List, Tuple

OS_NAMES: Tuple[str, ...] = (
    # copying and preallocation
    "copy_file_range",
    "splice",
    "posix_fallocate",
    "sync_file_range",  # not in CPython's os today; hidden should it appear
    # page-cache advice (writeback pacing)
    "posix_fadvise",
    "POSIX_FADV_NORMAL",
    "POSIX_FADV_SEQUENTIAL",
    "POSIX_FADV_RANDOM",
    "POSIX_FADV_NOREUSE",
    "POSIX_FADV_WILLNEED",
    "POSIX_FADV_DONTNEED",
    # flushing: macOS's CPython has no fdatasync
    "fdatasync",
    # CPU affinity (the converter's default worker count)
    "sched_getaffinity",
    "sched_setaffinity",
    # vectored I/O: macOS has it only from Python 3.11 on macOS 11, so the oldest Macs lack it
    "preadv",
    "pwritev",
    "RWF_APPEND",
    "RWF_DSYNC",
    "RWF_SYNC",
    "RWF_HIPRI",
    "RWF_NOWAIT",
    # other Linux-only file calls and flags
    "pipe2",
    "memfd_create",
    "O_DIRECT",
    "O_NOATIME",
    "O_PATH",
    "O_TMPFILE",
)

FCNTL_NAMES: Tuple[str, ...] = (
    "F_GETPIPE_SZ",
    "F_SETPIPE_SZ",
    "F_NOTIFY",
    "F_ADD_SEALS",
    "F_GET_SEALS",
    "F_SEAL_GROW",
    "F_SEAL_SEAL",
    "F_SEAL_SHRINK",
    "F_SEAL_WRITE",
    "FICLONE",
    "FICLONERANGE",
    "LOCK_MAND",
    "LOCK_READ",
    "LOCK_RW",
    "LOCK_WRITE",
)

MODULES: Dict[str, Tuple[ModuleType, Tuple[str, ...]]] = {
    "os": (os, OS_NAMES),
    "fcntl": (fcntl, FCNTL_NAMES),
}


def hide() -> List[str]:
    """Remove the Linux-only names from ``os`` and ``fcntl``; return those removed, spelled
    ``module.name``. Idempotent."""
    removed = []
    for label, (module, names) in MODULES.items():
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
                removed.append(f"{label}.{name}")
    # Python 3.13's os.process_cpu_count calls sched_getaffinity by its global name; macOS's
    # is cpu_count itself.
    if hasattr(os, "process_cpu_count") and not hasattr(os, "sched_getaffinity"):
        os.process_cpu_count = os.cpu_count
    return removed


def visible() -> List[str]:
    """The names of the lists this process still has (empty once :func:`hide` ran)."""
    return [
        f"{label}.{name}"
        for label, (module, names) in MODULES.items()
        for name in names
        if hasattr(module, name)
    ]
