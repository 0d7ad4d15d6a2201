"""Helpers shared by the readers of formats that map fixed-size guest blocks through one table
of 32-bit entries (VHD's BAT, VDI's block map): skipping long runs of one entry value at C
speed, finding blocks that overlap in bounded memory, and merging runs into extents."""

from __future__ import annotations

import heapq
import os
import re
from array import array
from typing import Dict, Iterable, Iterator, Optional, Pattern, Tuple

from .diskimage import DiskImage, Extent
from .sourcefile import SourceFile

_RUNS: Dict[bytes, Pattern[bytes]] = {}
#: Values sorted at a time by :func:`find_overlap` (a list of Python ints is ~36 bytes per
#: value; the sorted chunks are kept as 4-byte arrays).
_SORT_CHUNK = 1 << 16


def run_end(table: bytes, index: int, stop: int, entry: bytes) -> int:
    """The first index in [index, stop) whose 4-byte entry is not ``entry`` (``stop`` when
    they all are): a regex over whole 4-byte entries, so a terabyte of unallocated blocks
    costs one scan in C, not a Python loop."""
    pattern = _RUNS.get(entry)
    if pattern is None:
        pattern = _RUNS[entry] = re.compile(b"(?:" + re.escape(entry) + b")+")
    found = pattern.match(table, 4 * index, 4 * stop)
    return found.end() // 4 if found else index


def allocated(table: bytes, count: int, unallocated: bytes) -> Iterator[int]:
    """Indices of the entries of ``table`` (``count`` 4-byte entries) that are not the
    ``unallocated`` value, skipping runs of it at C speed."""
    index = 0
    while index < count:
        index = run_end(table, index, count, unallocated)
        if index >= count:
            return
        yield index
        index += 1


def find_overlap(starts: array, length: int) -> Optional[Tuple[int, int]]:  # type: ignore[type-arg]
    """Two values of ``starts`` less than ``length`` apart (two blocks of ``length`` units
    that share a unit), or None. Linear when the values increase, as writers append blocks;
    otherwise sorted in chunks and merged, so memory stays ~4 bytes per value."""
    if all(b - a >= length for a, b in zip(starts, starts[1:])):
        return None
    chunks = [
        array(starts.typecode, sorted(starts[pos : pos + _SORT_CHUNK]))
        for pos in range(0, len(starts), _SORT_CHUNK)
    ]
    previous: Optional[int] = None
    for value in heapq.merge(*chunks):
        if previous is not None and value - previous < length:
            return previous, value
        previous = value
    return None


def merged(runs: Iterable[Extent]) -> Iterator[Extent]:
    """``runs`` (in order, contiguous) with adjacent runs of one kind joined."""
    current: Optional[Extent] = None
    for run in runs:
        if current is not None and current.kind == run.kind:
            current = Extent(current.offset, current.length + run.length, run.kind)
            continue
        if current is not None:
            yield current
        current = run
    if current is not None:
        yield current


def actual_size(fd: int) -> int:
    """``qemu-img info``'s actual-size: the bytes the file occupies on the disk."""
    return os.fstat(fd).st_blocks * 512


class SourceImage(DiskImage):
    """A reader of one :class:`SourceFile`, which it closes."""

    def __init__(self, source: SourceFile) -> None:
        self.file = source
        self.path = source.path

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> SourceImage:
        return self

    def _check_open(self) -> None:
        if self.file.fd < 0:
            raise ValueError(f"I/O operation on a closed {self.format} image")
