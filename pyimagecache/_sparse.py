"""Write data into a sparse file, skipping every all-zero block (``qemu-img convert -S 4k``).

The target is created by truncation to its full size, so anything never written reads as
zeros and occupies no disk blocks. Blocks are aligned to absolute file offsets because that is
the granularity at which a filesystem allocates.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Iterator, List, Optional, Tuple, Union

BLOCK = 4096
_ZERO_BLOCK = bytes(BLOCK)
_ZERO_WINDOW = bytes(1 << 20)

Buffer = Union[bytes, bytearray, memoryview]


def is_zero(data: Union[bytes, bytearray], length: Optional[int] = None, start: int = 0) -> bool:
    """True when ``data[start:length]`` (default: all) is zero, at memcmp speed, without
    copying or allocating."""
    n = len(data) if length is None else length
    window = _ZERO_WINDOW
    step = len(window)
    for pos in range(start, n, step):
        end = min(n, pos + step)
        if not data.startswith(window if end - pos == step else window[: end - pos], pos, end):
            return False
    return True


#: (start, end) absolute offsets of the non-zero data a write_sparse call wrote.
Runs = List[Tuple[int, int]]


def write_sparse(
    fd: int,
    offset: int,
    data: Buffer,
    length: Optional[int] = None,
    runs: Optional[Runs] = None,
) -> int:
    """pwrite the non-zero blocks of ``data[:length]`` at ``offset``; return the bytes written.

    Runs of adjacent non-zero blocks are coalesced into one pwrite. ``startswith`` with bounds
    compares in place, which is ~30x faster than comparing memoryview slices; ``length`` lets a
    caller pass a reused buffer larger than the data. Given a list, ``runs`` receives the
    absolute (start, end) of every run written, in order: every non-zero byte is inside one,
    so a caller learns where the data is without scanning it again (the content digest).
    """
    buf = data if isinstance(data, (bytes, bytearray)) else bytes(data)
    n = len(buf) if length is None else length
    if n == 0 or is_zero(buf, n):
        return 0
    view = memoryview(buf)
    written = 0
    pos = 0
    run_start = -1
    zero = _ZERO_BLOCK
    while pos < n:
        # Each block ends at the next BLOCK boundary of the file, not of the buffer.
        end = min(n, pos + BLOCK - ((offset + pos) % BLOCK))
        if buf.startswith(zero[: end - pos], pos, end):
            if run_start >= 0:
                written += pwrite_all(fd, view[run_start:pos], offset + run_start)
                if runs is not None:
                    runs.append((offset + run_start, offset + pos))
                run_start = -1
        elif run_start < 0:
            run_start = pos
        pos = end
    if run_start >= 0:
        written += pwrite_all(fd, view[run_start:n], offset + run_start)
        if runs is not None:
            runs.append((offset + run_start, offset + n))
    return written


def pwrite_all(fd: int, data: Buffer, offset: int) -> int:
    """pwrite until every byte is written (pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    total = len(view)
    while len(view):
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done
    return total


def pread_into(fd: int, buf: bytearray, length: int, offset: int) -> int:
    """Read up to ``length`` bytes at ``offset`` into the start of ``buf``; return the count
    (short only at end of file). ``os.preadv`` fills a reused buffer; where it is missing,
    ``os.pread`` allocates one."""
    view = memoryview(buf)
    got = 0
    while got < length:
        if _preadv is not None:
            n = _preadv(fd, [view[got:length]], offset + got)
        else:
            chunk = os.pread(fd, length - got, offset + got)
            n = len(chunk)
            view[got : got + n] = chunk
        if n == 0:
            break
        got += n
    return got


_preadv = getattr(os, "preadv", None)


def start_writeback(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to start writing dirty pages now (Linux: POSIX_FADV_DONTNEED starts
    writeback without waiting), so that a final fsync has little left. A no-op elsewhere."""
    # Looked up per call: macOS has neither, and a test may hide them.
    advise = getattr(os, "posix_fadvise", None)
    dontneed = getattr(os, "POSIX_FADV_DONTNEED", None)
    if advise is not None and dontneed is not None:
        try:
            advise(fd, offset, length, dontneed)
        except OSError:
            pass  # advice only


#: Bytes written between two calls of start_writeback by a WritebackPacer.
WRITEBACK_BYTES = 32 << 20


class WritebackPacer:
    """Starts writeback of ``fd`` each time another ``every`` bytes have been written to it,
    so that the disk works while the writer does and the publishing fsync has little left.

    A writer that knows where it wrote passes ``offset``: only the span written since the last
    writeback is advised, which is cheaper on a large file than advising all of it.
    """

    def __init__(self, fd: int, every: int = WRITEBACK_BYTES) -> None:
        self.fd = fd
        self.every = every
        self._since = 0
        self._lo: Optional[int] = None
        self._hi = 0

    def wrote(self, nbytes: int, offset: Optional[int] = None) -> None:
        self._since += nbytes
        if offset is not None:
            self._lo = offset if self._lo is None else min(self._lo, offset)
            self._hi = max(self._hi, offset + nbytes)
        if self._since >= self.every:
            if self._lo is None:
                start_writeback(self.fd)
            else:
                start_writeback(self.fd, self._lo, self._hi - self._lo)
            self._since, self._lo, self._hi = 0, None, 0


def data_extents(fd: int, length: int, *, seek_data: bool = True) -> Iterator[Tuple[int, int]]:
    """(start, end) of each data region of ``fd`` (SEEK_DATA/SEEK_HOLE); the whole file where
    holes are not known, or with ``seek_data=False``."""
    if not seek_data or not hasattr(os, "SEEK_DATA"):
        yield 0, length
        return
    pos = 0
    while pos < length:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos: the rest is one hole
                return
            if pos == 0:  # the filesystem cannot say: treat everything as data
                yield 0, length
                return
            raise
        if start >= length:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), length)
        yield start, end
        pos = end


_buffers = threading.local()


def thread_buffer(name: str, size: int) -> bytearray:
    """A per-thread buffer of at least ``size`` bytes, reused across calls: fresh
    multi-megabyte allocations would cost a page fault per 4 KiB every time, which is most of
    the time spent on fast inputs. ``name`` keeps a thread's buffers for different uses apart
    (a task's output, the compressed input behind it)."""
    buf: Optional[bytearray] = getattr(_buffers, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        setattr(_buffers, name, buf)
    return buf
