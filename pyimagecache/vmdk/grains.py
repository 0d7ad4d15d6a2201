"""A hosted sparse extent (monolithicSparse, streamOptimized, one extent of twoGbMaxExtentSparse):
its grain directory and tables turned into runs, and reads of plain and compressed grains.

A grain table entry is 0 (unallocated), 1 (a grain of zeros, when the header's zero-grain flag
is set: qemu's ``zeroed_grain``) or the sector of the grain. A compressed grain starts with a
marker ``{lba u64, size u32}`` followed by ``size`` bytes of a zlib stream; the marker must name
the grain the table maps there, and decompression is bounded to one grain.

Reads are positional only, so one extent serves several threads; grain tables are read when a
range needs them and kept in a small cache bounded in bytes.
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections import OrderedDict
from typing import Iterator, List, NamedTuple, Sequence, Tuple

from .. import _codecs
from .._sparse import thread_buffer
from ..diskimage import COMPRESSED, DATA, UNALLOCATED, ZERO
from ..errors import VmdkCorruptError
from ..sourcefile import SourceFile
from .header import SECTOR, SparseHeader

#: Compressed grains of one read are fetched with one pread while their host span stays small.
MAX_BATCH_SPAN = 4 << 20
_GT_CACHE_BYTES = 2 << 20
_MARKER = struct.Struct("<QI")
MARKER_BYTES = _MARKER.size  # 12: lba, size; the zlib stream follows at once


class Run(NamedTuple):
    """``length`` extent bytes from ``guest``, all of one kind. DATA: contiguous in the file
    from ``host``. COMPRESSED: one grain whose marker is at ``host``."""

    guest: int
    length: int
    kind: str
    host: int = 0


class SparseExtent:
    """A validated sparse extent of ``size`` bytes: its header, its grain directory in memory,
    its grain tables read on demand."""

    def __init__(self, file: SourceFile, header: SparseHeader, name: str) -> None:
        self.file = file
        self.header = header
        self.name = name  # how the descriptor names it; "" for a standalone sparse file
        self.size = header.virtual_size
        self.file_size = file.size
        self.grain = header.grain_bytes
        self.compressed = header.compressed
        self.span = header.gtes_per_gt * self.grain  # extent bytes covered by one grain table
        self.gt_bytes = 4 * header.gtes_per_gt
        # Data grains never start inside the metadata at the start of the file (header,
        # descriptor, directories): that is where qemu and VMware put them all.
        self.first_grain_sector = max(1, header.overhead)
        count = header.gd_entries
        gd_at = header.gd_offset * SECTOR
        raw = file.pread(4 * count, gd_at) if count else b""
        if len(raw) < 4 * count:  # the header check makes this a race only
            raise VmdkCorruptError(f"{self.where}grain directory at {gd_at:#x} is truncated")
        self.gd = array("I", raw)
        if struct.pack("=I", 1) != struct.pack("<I", 1):
            self.gd.byteswap()
        self._check_directory()
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    @property
    def where(self) -> str:
        return f"extent {self.name!r}: " if self.name else ""

    # -- the grain directory --------------------------------------------------------------
    def _gd_where(self, index: int) -> str:
        at = self.header.gd_offset * SECTOR + 4 * index
        return f"{self.where}grain directory entry {index} (file offset {at:#x})"

    def _check_directory(self) -> None:
        """Every grain table inside the file, past the header, overlapping neither another
        table nor the directory. Refusing shared tables also bounds the work of a walk by the
        size of the file, not by a hostile directory."""
        gt_sectors = -(-self.gt_bytes // SECTOR)
        gd_start = self.header.gd_offset
        gd_end = gd_start + -(-4 * len(self.gd) // SECTOR)
        tables: List[Tuple[int, int]] = []
        for index, sector in enumerate(self.gd):
            if not sector:
                continue
            if sector * SECTOR + self.gt_bytes > self.file_size:
                raise VmdkCorruptError(
                    f"{self._gd_where(index)}: grain table at sector {sector} runs past the end "
                    f"of the file ({self.file_size} bytes)"
                )
            if sector < gd_end and sector + gt_sectors > gd_start:
                raise VmdkCorruptError(
                    f"{self._gd_where(index)}: grain table at sector {sector} overlaps the grain "
                    f"directory (sectors {gd_start}..{gd_end - 1})"
                )
            tables.append((sector, index))
        tables.sort()
        for (prev, prev_index), (sector, index) in zip(tables, tables[1:]):
            if sector < prev + gt_sectors:
                raise VmdkCorruptError(
                    f"{self._gd_where(index)}: grain table at sector {sector} overlaps the one "
                    f"of grain directory entry {prev_index} at sector {prev}"
                )

    def _table(self, index: int) -> bytes:
        with self._lock:
            table = self._cache.get(index)
            if table is not None:
                self._cache.move_to_end(index)
                return table
        at = self.gd[index] * SECTOR
        table = self.file.pread(self.gt_bytes, at)
        if len(table) < self.gt_bytes:  # the directory check makes this a race only
            raise VmdkCorruptError(f"{self._gd_where(index)}: grain table at {at:#x} truncated")
        with self._lock:
            self._cache[index] = table
            while len(self._cache) > max(1, _GT_CACHE_BYTES // self.gt_bytes):
                self._cache.popitem(last=False)
        return table

    # -- grain tables to runs -------------------------------------------------------------
    def runs(self, start: int, stop: int) -> Iterator[Run]:
        """Runs covering extent bytes [start, stop), in order, clipped to the extent; a run may
        begin before ``start`` or end after ``stop``."""
        stop = min(stop, self.size)
        if start >= stop:
            return
        span = self.span
        for index in range(start // span, (stop - 1) // span + 1):
            base = index * span
            end = min(self.size, base + span)
            if not self.gd[index]:
                yield Run(base, end - base, UNALLOCATED)
                continue
            first = (max(start, base) - base) // self.grain
            last = -(-(min(stop, end) - base) // self.grain)
            yield from self._table_runs(index, base, first, last)

    def _entry_where(self, index: int, entry: int) -> str:
        at = self.gd[index] * SECTOR
        grain = (index * self.span) // self.grain + entry
        return (
            f"{self.where}grain table {index} (at file offset {at:#x}) entry {entry} (file "
            f"offset {at + 4 * entry:#x}, grain {grain})"
        )

    def _table_runs(self, index: int, base: int, first: int, last: int) -> Iterator[Run]:
        table = self._table(index)
        count = last - first
        g = self.grain
        end = min(self.size, base + last * g)
        entries = struct.unpack_from(f"<{count}I", table, 4 * first)
        guest = base + first * g
        if not any(entries):
            yield Run(guest, end - guest, UNALLOCATED)
            return
        gs = self.header.grain_sectors
        e0 = entries[0]
        if not self.compressed and e0 > 1 and entries == tuple(range(e0, e0 + count * gs, gs)):
            # Contiguous data grains (a full monolithicSparse): check the first and the last.
            self._check_data(index, first, e0)
            self._check_data(index, last - 1, entries[-1])
            yield Run(guest, end - guest, DATA, e0 * SECTOR)
            return
        kind, start, host = "", guest, 0
        zero_grain = self.header.zero_grain
        for n, entry in enumerate(entries):
            at = guest + n * g
            if entry == 0:
                this, this_host = UNALLOCATED, 0
            elif entry == 1 and zero_grain:
                this, this_host = ZERO, 0
            else:
                self._check_data(index, first + n, entry)
                this, this_host = (COMPRESSED if self.compressed else DATA), entry * SECTOR
            if (
                this == kind
                and kind != COMPRESSED
                and (kind != DATA or this_host == host + at - start)
            ):
                continue
            if kind:
                yield Run(start, at - start, kind, host)
            kind, start, host = this, at, this_host
        yield Run(start, end - start, kind, host)

    def _check_data(self, index: int, entry: int, sector: int) -> None:
        if sector < self.first_grain_sector:
            zero = "" if self.header.zero_grain else " (the zero-grain flag, bit 2, is clear)"
            raise VmdkCorruptError(
                f"{self._entry_where(index, entry)}: grain at sector {sector} lies inside the "
                f"metadata before overHead {self.header.overhead}{zero}"
            )
        need = MARKER_BYTES if self.compressed else 1
        if sector * SECTOR + need > self.file_size:
            raise VmdkCorruptError(
                f"{self._entry_where(index, entry)}: grain at sector {sector} lies past the end "
                f"of the file ({self.file_size} bytes)"
            )

    # -- reading --------------------------------------------------------------------------
    def read_into(self, offset: int, length: int, view: memoryview) -> None:
        """Fill ``view[:length]`` with extent bytes from ``offset``."""
        end = offset + length
        batch: List[Run] = []
        for run in self.runs(offset, end):
            if run.kind == COMPRESSED:
                if batch and (
                    run.host < batch[-1].host
                    or run.host + 2 * self.grain - batch[0].host > MAX_BATCH_SPAN
                ):
                    self._inflate(batch, offset, end, view)
                    batch = []
                batch.append(run)
                continue
            if batch:
                self._inflate(batch, offset, end, view)
                batch = []
            lo, hi = max(run.guest, offset), min(run.guest + run.length, end)
            out = view[lo - offset : hi - offset]
            if run.kind == DATA:
                got = self.file.pread_into(out, hi - lo, run.host + lo - run.guest)  # type: ignore[arg-type]
                if got < hi - lo:  # a grain running past the end of the file reads as zeros
                    out[got:] = bytes(hi - lo - got)
            else:
                out[:] = bytes(hi - lo)
        if batch:
            self._inflate(batch, offset, end, view)

    def _inflate(self, batch: Sequence[Run], offset: int, end: int, view: memoryview) -> None:
        """Decompress the host-ordered compressed grains of ``batch``, read with one pread,
        into their place in ``view``. A grain and its marker span at most two grains (qemu
        reads two), so the read ends two grains past the last marker, or at the end of file."""
        lo = batch[0].host
        hi = min(self.file_size, batch[-1].host + 2 * self.grain)
        inbuf = thread_buffer("compressed", hi - lo)
        got = self.file.pread_into(inbuf, hi - lo, lo)
        data = memoryview(inbuf)[:got]
        for run in batch:
            grain = self._grain(run, data[run.host - lo :])
            g_lo, g_hi = max(run.guest, offset), min(run.guest + run.length, end)
            view[g_lo - offset : g_hi - offset] = memoryview(grain)[
                g_lo - run.guest : g_hi - run.guest
            ]

    def _grain(self, run: Run, data: memoryview) -> bytes:
        """The grain of compressed ``run`` from the bytes at its marker."""
        number = run.guest // self.grain
        where = f"{self.where}compressed grain {number} (marker at file offset {run.host:#x})"
        if len(data) < MARKER_BYTES:
            raise VmdkCorruptError(f"{where}: the marker runs past the end of the file")
        lba, size = _MARKER.unpack_from(data)
        expected = run.guest // SECTOR
        if lba != expected:
            raise VmdkCorruptError(
                f"{where}: the marker's lba is {lba}, the grain table maps sector {expected} here"
            )
        if size == 0 or MARKER_BYTES + size > 2 * self.grain:
            raise VmdkCorruptError(
                f"{where}: the marker's size {size} is outside 1..{2 * self.grain - MARKER_BYTES}"
            )
        if MARKER_BYTES + size > len(data):
            raise VmdkCorruptError(
                f"{where}: the marker's size {size} runs past the end of the file "
                f"({self.file_size} bytes)"
            )
        need = min(self.grain, self.size - run.guest)
        try:
            out = _codecs.inflate_zlib(data[MARKER_BYTES : MARKER_BYTES + size], self.grain)
            if len(out) < need:
                raise _codecs.DecompressError(f"produced {len(out)} of {need} bytes")
        except _codecs.DecompressError as exc:
            raise VmdkCorruptError(
                f"{where}: does not decompress to one grain of {self.grain} bytes: {exc}"
            ) from None
        return out
