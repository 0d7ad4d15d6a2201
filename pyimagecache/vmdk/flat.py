"""Flat extents (``FLAT`` and ``VMFS``: guest bytes stored as they are, from an offset of a
file) and ``ZERO`` extents (no file: zeros)."""

from __future__ import annotations

from typing import Iterator

from .._sparse import data_extents
from ..diskimage import DATA, UNALLOCATED, ZERO
from ..sourcefile import GrowingFile, SourceFile
from .grains import Run
from .header import SECTOR


class FlatExtent:
    """``size`` bytes from byte ``start`` of ``file``. Like qemu (whose raw files read zeros
    past their end), a file shorter than the extent reads as zeros where it ends."""

    compressed = False

    def __init__(self, file: SourceFile, start_sector: int, sectors: int, kind: str, name: str):
        self.file = file
        self.start = start_sector * SECTOR
        self.size = sectors * SECTOR
        self.type = kind
        self.name = name

    def runs(self, start: int, stop: int) -> Iterator[Run]:
        """DATA where the file holds data, UNALLOCATED for its holes and past its end."""
        stop = min(stop, self.size)
        lo, hi = self.start + start, self.start + stop
        pos = lo
        seek = not isinstance(self.file, GrowingFile)
        for d_start, d_end in data_extents(self.file.fd, min(hi, self.file.size), seek_data=seek):
            d_start, d_end = max(d_start, lo), min(d_end, hi)
            if d_start >= d_end:
                continue
            if d_start > pos:
                yield Run(pos - self.start, d_start - pos, UNALLOCATED)
            yield Run(d_start - self.start, d_end - d_start, DATA, d_start)
            pos = d_end
        if pos < hi:
            yield Run(pos - self.start, hi - pos, UNALLOCATED)

    def read_into(self, offset: int, length: int, view: memoryview) -> None:
        got = self.file.pread_into(view, length, self.start + offset)  # type: ignore[arg-type]
        if got < length:
            view[got:length] = bytes(length - got)


class ZeroExtent:
    """A ``ZERO`` extent: ``size`` bytes of zeros, no file."""

    compressed = False
    type = "ZERO"
    name = ""

    def __init__(self, sectors: int) -> None:
        self.size = sectors * SECTOR

    def runs(self, start: int, stop: int) -> Iterator[Run]:
        stop = min(stop, self.size)
        if start < stop:
            yield Run(start, stop - start, ZERO)

    def read_into(self, offset: int, length: int, view: memoryview) -> None:
        view[:length] = bytes(length)
