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
from typing import NamedTuple, Optional, Tuple, Union

from ._atomic import atomic_output
from ._sparse import WRITEBACK_BYTES, WritebackPacer, data_extents, write_sparse
from .errors import DiskCopyError
from .outputs import check_output

PathLike = Union[str, "os.PathLike[str]"]

#: Bytes read per call by the read-and-write fallback of copy_disk.
COPY_BYTES = 8 << 20
_SIZE = re.compile(r"\s*(\d+)\s*([kmgtp]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}

# copy_file_range errors meaning "not here" (old kernel, cross-device, unsupported filesystem):
# fall back to reading, they say nothing about the data.
_NO_COPY_RANGE = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}

_KNOWN_METHODS = ("copy_file_range", "read")
# copy_file_range is Linux's (macOS has none); _copy_range also looks it up at each call.
_AVAILABLE = ("copy_file_range", "read") if hasattr(os, "copy_file_range") else ("read",)


class _StrategyFields(NamedTuple):
    methods: Tuple[str, ...]
    seek_data: bool


class CopyStrategy(_StrategyFields):
    """How copy_disk moves bytes, best first: ``methods`` from ``copy_file_range`` and
    ``read`` (read and write the non-zero blocks); ``seek_data``: find holes with
    SEEK_DATA/SEEK_HOLE. The default uses all this platform has; a narrower one exercises the
    fallbacks.

    >>> CopyStrategy(methods=("read",), seek_data=False).methods
    ('read',)
    """

    def __new__(
        cls,
        methods: Tuple[str, ...] = _AVAILABLE,
        seek_data: bool = hasattr(os, "SEEK_DATA"),
    ) -> CopyStrategy:
        methods = tuple(methods)
        unknown = [m for m in methods if m not in _KNOWN_METHODS]
        if not methods or unknown or methods[-1] != "read":
            raise ValueError(
                f"methods must be drawn from {_KNOWN_METHODS} and end with 'read', got {methods}"
            )
        if "copy_file_range" in methods and not hasattr(os, "copy_file_range"):
            raise ValueError("copy_file_range is not available on this platform")
        return super().__new__(cls, methods, bool(seek_data))


DEFAULT_STRATEGY = CopyStrategy()


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


def _check_raw(src: Path, dst: Path) -> None:
    """copy_disk copies raw disks: copying a qcow2 (or any other format) would give a file
    whose bytes are the container, padded, not the disk it holds."""
    from .formats import RAW, detect_file

    try:
        fmt = detect_file(src)
    except OSError as exc:
        raise DiskCopyError(f"cannot read source disk {src}: {exc.strerror or exc}") from None
    if fmt != RAW:
        raise DiskCopyError(
            f"{src} is a {fmt} image, not a raw disk: copying it would copy the container, "
            f"not the disk inside; convert it instead (`pyimagecache convert {src} {dst}`, or "
            "`pyimagecache ensure` for a download)"
        )


def copy_disk(
    src: PathLike,
    dst: PathLike,
    size: int = 0,
    *,
    sync: bool = False,
    strategy: CopyStrategy = DEFAULT_STRATEGY,
) -> Path:
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

    >>> import pathlib, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "base.raw").write_bytes(b"boot" + bytes(4092))
    >>> vm = copy_disk(tmp / "base.raw", tmp / "vm.raw", size=1 << 30)
    >>> vm.stat().st_size, vm.read_bytes()[:4]
    (1073741824, b'boot')
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
    check_output(src, dst, DiskCopyError)
    _check_raw(src, dst)
    final = size or st.st_size
    with open(src, "rb") as fin, atomic_output(dst, durable=sync) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, st.st_size)
            # Starting writeback early only pays when the copy will be flushed anyway.
            pacer = WritebackPacer(fd) if sync else None
            _copy_data(fin.fileno(), fd, st.st_size, pacer, strategy)
            os.ftruncate(fd, final)
        finally:
            os.close(fd)
    return dst


def _copy_data(
    src_fd: int,
    dst_fd: int,
    length: int,
    writeback: Optional[WritebackPacer],
    strategy: CopyStrategy,
) -> None:
    method = strategy.methods[0]
    for start, end in data_extents(src_fd, length, seek_data=strategy.seek_data):
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
    # getattr, not os.copy_file_range: typed as Linux-only, and gone where the OS lacks it.
    copy_file_range = getattr(os, "copy_file_range", None)
    if copy_file_range is None:
        return start
    pos = start
    while pos < end:
        try:
            n: int = copy_file_range(src_fd, dst_fd, min(end - pos, WRITEBACK_BYTES), pos, pos)
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
        data = os.pread(src_fd, min(COPY_BYTES, end - pos), pos)
        if not data:
            raise DiskCopyError(f"source disk ended early at offset {pos} (modified during copy?)")
        write_sparse(dst_fd, pos, data)
        if writeback is not None:
            writeback.wrote(len(data), pos)
        pos += len(data)
