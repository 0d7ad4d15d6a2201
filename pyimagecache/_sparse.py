"""Write data into a sparse file, skipping every all-zero block (``qemu-img convert -S 4k``).

The target is created by truncation to its full size, so anything never written reads as
zeros and occupies no disk blocks. Blocks are aligned to absolute file offsets because that is
the granularity at which a filesystem allocates.
"""

from __future__ import annotations

import os
from typing import Union

BLOCK = 4096
_ZERO_BLOCK = bytes(BLOCK)
_ZERO_WINDOW = bytes(1 << 20)

Buffer = Union[bytes, bytearray, memoryview]


def is_zero(data: Union[bytes, bytearray]) -> bool:
    """True when every byte is zero, at memcmp speed (no copy, no large allocation)."""
    n = len(data)
    window = _ZERO_WINDOW
    step = len(window)
    for pos in range(0, n, step):
        end = min(n, pos + step)
        if not data.startswith(window if end - pos == step else window[: end - pos], pos, end):
            return False
    return True


def write_sparse(fd: int, offset: int, data: Buffer) -> int:
    """pwrite the non-zero blocks of ``data`` at ``offset``; return the bytes actually written.

    Runs of adjacent non-zero blocks are coalesced into one pwrite. ``startswith`` with bounds
    compares in place, which is ~30x faster than comparing memoryview slices.
    """
    buf = data if isinstance(data, (bytes, bytearray)) else bytes(data)
    n = len(buf)
    if n == 0 or is_zero(buf):
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
                run_start = -1
        elif run_start < 0:
            run_start = pos
        pos = end
    if run_start >= 0:
        written += pwrite_all(fd, view[run_start:n], offset + run_start)
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
