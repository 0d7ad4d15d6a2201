"""Copy a disk image to a VM's own disk, keeping holes, optionally growing it (sparse).

Data extents are found with SEEK_DATA/SEEK_HOLE and copied with ``os.copy_file_range`` (which
the kernel may turn into a reflink or a server-side copy); where either is missing, the copy
reads blocks and writes only the non-zero ones. The result is published atomically, so a
crash never leaves a half-copied disk under the destination name.

Like ``cp``, the copy is not flushed to the disk unless asked (``sync=True``): flushing 300 MiB
costs more than copying it, and a VM's disk is rarely worth that before the VM even starts.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Optional, Tuple, Union

from ._atomic import atomic_output
from ._sparse import WRITEBACK_BYTES, WritebackPacer, data_extents, write_sparse
from .errors import DiskCopyError

PathLike = Union[str, "os.PathLike[str]"]

CHUNK = 8 << 20
_SIZE = re.compile(r"\s*(\d+)\s*([kmgtp]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}

# copy_file_range errors meaning "not here" (old kernel, cross-device, unsupported filesystem):
# fall back to reading, they say nothing about the data.
_NO_COPY_RANGE = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}

#: Copy strategies, best first; tests narrow this to exercise the fallbacks.
METHODS: Tuple[str, ...] = (
    ("copy_file_range", "read") if hasattr(os, "copy_file_range") else ("read",)
)
#: Whether holes are found with SEEK_DATA/SEEK_HOLE; tests clear it to use zero detection alone.
USE_SEEK_DATA = hasattr(os, "SEEK_DATA")


def parse_size(text: str) -> int:
    """Bytes from a plain count or an integer with K, M, G, T or P (powers of 1024; ``20G``,
    ``20GiB`` and ``20GB`` all mean 20 GiB, as for qemu-img and truncate).

    >>> parse_size("20G"), parse_size("512MiB"), parse_size("4096")
    (21474836480, 536870912, 4096)
    """
    m = _SIZE.fullmatch(text)
    if not m:
        raise DiskCopyError(
            f"invalid size {text!r}: expected bytes or a number with K, M, G, T or P (e.g. 20G)"
        )
    return int(m.group(1)) << _UNITS[m.group(2).lower()]


def copy_disk(src: PathLike, dst: PathLike, size: int = 0, *, sync: bool = False) -> Path:
    """Copy ``src`` to ``dst`` (replacing it atomically) and extend it to ``size`` bytes, sparse.

    ``size=0`` keeps src's size; a size smaller than src raises :class:`DiskCopyError` before
    ``dst`` is created or touched. Holes stay holes, so a 3 GiB image holding 300 MiB of data
    copies in time proportional to the data and allocates about what ``src`` does.

    ``dst`` appears complete or not at all, even if the process is killed. ``sync=True`` also
    makes the copy durable (data and rename flushed to the disk before returning), which takes
    longer than the copy itself on most disks; without it, as with ``cp``, a power loss soon
    after may leave a new ``dst`` reading as zeros.

    >>> base = pyimagecache.ensure("debian-12")  # doctest: +SKIP
    >>> copy_disk(base, "vm1.raw", size=20 << 30)  # doctest: +SKIP
    PosixPath('vm1.raw')
    """
    src, dst = Path(src), Path(dst)
    try:
        st = src.stat()
    except OSError as exc:
        raise DiskCopyError(f"cannot read source disk {src}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DiskCopyError(f"source disk {src} is not a regular file")
    if size < 0:
        raise DiskCopyError(f"size must be 0 (keep the source's) or positive, got {size}")
    if size and size < st.st_size:
        raise DiskCopyError(
            f"size {size} is smaller than the source disk {src} ({st.st_size} bytes); "
            "shrinking would cut data off"
        )
    if dst.is_dir():
        raise DiskCopyError(f"destination {dst} is a directory")
    try:
        if dst.exists() and os.path.samefile(src, dst):
            raise DiskCopyError(f"source and destination are the same file: {src}")
    except OSError:
        pass
    final = size or st.st_size
    with open(src, "rb") as fin, atomic_output(dst, durable=sync) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, st.st_size)
            # Starting writeback early only pays when the copy will be flushed anyway.
            _copy_data(fin.fileno(), fd, st.st_size, WritebackPacer(fd) if sync else None)
            os.ftruncate(fd, final)
        finally:
            os.close(fd)
    return dst


def _copy_data(
    src_fd: int, dst_fd: int, length: int, writeback: Optional[WritebackPacer]
) -> None:
    method = METHODS[0]
    for start, end in data_extents(src_fd, length, seek_data=USE_SEEK_DATA):
        if method == "copy_file_range":
            done = _copy_range(src_fd, dst_fd, start, end, writeback)
            if done < end:  # not supported here: read the rest of this and every later extent
                method = "read"
                start = done
        if method == "read":
            _read_range(src_fd, dst_fd, start, end, writeback)


def _copy_range(
    src_fd: int, dst_fd: int, start: int, end: int, writeback: Optional[WritebackPacer]
) -> int:
    """copy_file_range from start to end; returns where it stopped (< end if unsupported)."""
    pos = start
    while pos < end:
        try:
            n = os.copy_file_range(src_fd, dst_fd, min(end - pos, WRITEBACK_BYTES), pos, pos)
        except OSError as exc:
            if exc.errno in _NO_COPY_RANGE:
                return pos
            raise
        if n == 0:  # source shrank under us
            raise DiskCopyError(f"source disk ended early at offset {pos} (modified during copy?)")
        if writeback is not None:
            writeback.wrote(n, pos)
        pos += n
    return pos


def _read_range(
    src_fd: int, dst_fd: int, start: int, end: int, writeback: Optional[WritebackPacer]
) -> None:
    pos = start
    while pos < end:
        data = os.pread(src_fd, min(CHUNK, end - pos), pos)
        if not data:
            raise DiskCopyError(f"source disk ended early at offset {pos} (modified during copy?)")
        write_sparse(dst_fd, pos, data)
        if writeback is not None:
            writeback.wrote(len(data), pos)
        pos += len(data)
