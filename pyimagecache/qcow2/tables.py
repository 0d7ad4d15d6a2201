"""Decode and validate L1 and L2 entries into runs of guest bytes (qemu's qcow2-cluster.c).

An L2 table turns into a short list of :class:`Run` values: adjacent clusters of one kind are
merged, and data clusters merge only while their host clusters are contiguous, so the converter
can move a whole run with one large read. Every entry is validated before it is used, and the
error names the table, the entry's index and its file offset.
"""

from __future__ import annotations

import struct
from typing import Iterator, List, NamedTuple, Optional, Tuple

from ..diskimage import COMPRESSED, DATA, KINDS, UNALLOCATED, ZERO
from ..errors import Qcow2CorruptError
from .header import MAX_OFFSET, Header

__all__ = ["COMPRESSED", "DATA", "KINDS", "UNALLOCATED", "ZERO", "L2Decoder", "Run"]

L1_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L1_RESERVED = 0x7F000000000001FF
L2_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2_RESERVED_STD = 0x3F000000000001FE
FLAG_COMPRESSED = 1 << 62
FLAG_COPIED = 1 << 63
FLAG_ZERO = 1
ALL_SUBCLUSTERS = 0xFFFFFFFF
#: L2 entries compared at once by the fast paths of L2Decoder._pieces.
ENTRIES_PER_STRETCH = 64
_ZERO_STRETCH = bytes(ENTRIES_PER_STRETCH * 8)
SUBCLUSTERS = 32


class Run(NamedTuple):
    """``length`` guest bytes from ``guest`` of one kind.

    DATA: read from ``host`` (contiguous). COMPRESSED: one cluster whose stream starts at byte
    ``host`` and spans at most ``csize`` bytes. ZERO / UNALLOCATED: ``host`` is unused.
    """

    guest: int
    length: int
    kind: str
    host: int = 0
    csize: int = 0


#: (guest, length, kind, host, csize) of one entry or of a stretch of entries, before merging.
Piece = Tuple[int, int, str, int, int]


def l1_entry_offset(hdr: Header, index: int, entry: int, file_size: int) -> int:
    """The validated L2 table offset of L1 entry ``index`` (0: the range is unallocated)."""
    where = f"L1 entry {index} (at file offset {hdr.l1_table_offset + 8 * index:#x})"
    if entry & L1_RESERVED:
        raise Qcow2CorruptError(f"{where}: reserved bits set in {entry:#018x}")
    offset = entry & L1_OFFSET_MASK
    if offset % hdr.cluster_size:
        raise Qcow2CorruptError(f"{where}: L2 table offset {offset:#x} is not aligned to a cluster")
    if offset and offset + hdr.cluster_size > file_size:
        raise Qcow2CorruptError(
            f"{where}: L2 table at {offset:#x} lies past the end of the file ({file_size} bytes)"
        )
    return offset


class L2Decoder:
    """Turns the entries of one L2 table into merged runs, validating each entry used."""

    def __init__(self, hdr: Header, file_size: int, data_size: int) -> None:
        self.hdr = hdr
        self.cs = hdr.cluster_size
        self.file_size = file_size  # where compressed clusters live (always the image)
        self.data_size = data_size  # where data clusters live (the image or its data file)
        self.external = hdr.data_file is not None
        self.v2 = hdr.version == 2
        cb = hdr.cluster_bits
        self.csize_shift = 62 - (cb - 8)
        self.coffset_mask = (1 << self.csize_shift) - 1
        self.csectors_mask = (1 << (cb - 8)) - 1

    def runs(
        self, table: bytes, table_offset: int, l1_index: int, first: int, stop: int
    ) -> List[Run]:
        """Runs for L2 entries ``first`` to ``stop`` (exclusive), clipped to the virtual size."""
        hdr = self.hdr
        cs = self.cs
        base = l1_index * hdr.l2_entries * cs
        stop = min(stop, -(-(hdr.virtual_size - base) // cs))
        if stop <= first:
            return []
        out: List[Run] = []
        # Current open run, merged as long as kind (and host contiguity for data) allow.
        kind = ""
        start = length = host = 0
        for p_guest, p_len, p_kind, p_host, p_csize in self._pieces(
            table, table_offset, l1_index, base, first, stop
        ):
            if (
                p_kind == kind
                and p_kind != COMPRESSED
                and (p_kind != DATA or p_host == host + length)
            ):
                length += p_len
                continue
            if kind:
                out.append(Run(start, length, kind, host, 0))
            if p_kind == COMPRESSED:
                out.append(Run(p_guest, p_len, COMPRESSED, p_host, p_csize))
                kind = ""
            else:
                kind, start, length, host = p_kind, p_guest, p_len, p_host
        if kind:
            out.append(Run(start, length, kind, host, 0))
        # Subcluster runs may start beyond an odd virtual size: drop them, clip the last one.
        end = min(hdr.virtual_size, base + stop * cs)
        while out[-1].guest >= end:
            out.pop()
        last = out[-1]
        if last.guest + last.length > end:
            out[-1] = last._replace(length=end - last.guest)
        return out

    def _pieces(
        self, table: bytes, table_offset: int, l1_index: int, base: int, first: int, stop: int
    ) -> Iterator[Piece]:
        """(guest, length, kind, host, csize) for entries ``first`` to ``stop``, in order.

        Without extended L2 entries or an external data file, entries go ENTRIES_PER_STRETCH
        at a time: an all-zero stretch of the table is one unallocated piece found by a byte
        comparison,
        and :meth:`_chunk` folds stretches of one repeated entry or of contiguous data
        clusters, so that neither a sparse table nor a full one costs a Python iteration per
        entry. Anything else is decoded entry by entry.
        """
        cs = self.cs
        ext = self.hdr.extended_l2
        width = 16 if ext else 8
        chunks = not ext and not self.external
        index = first
        while index < stop:
            guest = base + index * cs
            count = min(ENTRIES_PER_STRETCH, stop - index)
            at = index * width
            whole = chunks and count == ENTRIES_PER_STRETCH
            if whole and table.startswith(_ZERO_STRETCH, at, at + ENTRIES_PER_STRETCH * 8):
                yield guest, ENTRIES_PER_STRETCH * cs, UNALLOCATED, 0, 0
                index += ENTRIES_PER_STRETCH
                continue
            values = struct.unpack_from(f">{count * width // 8}Q", table, at)
            if whole:
                piece = self._chunk(values, guest, table_offset, l1_index, index)
                if piece is not None:
                    yield piece
                    index += ENTRIES_PER_STRETCH
                    continue
            for n in range(count):
                if ext:
                    entry, bitmap = values[2 * n], values[2 * n + 1]
                else:
                    entry, bitmap = values[n], 0
                if entry or bitmap:
                    yield from self._entry(
                        entry, bitmap, guest + n * cs, table_offset, l1_index, index + n
                    )
                else:
                    yield guest + n * cs, cs, UNALLOCATED, 0, 0
            index += count

    def _chunk(
        self, chunk: Tuple[int, ...], guest: int, table_offset: int, l1_index: int, index: int
    ) -> Optional[Piece]:
        """One piece for ENTRIES_PER_STRETCH entries that are all the same unallocated or zero
        entry, or that map contiguous host clusters; None when the entries must be decoded one
        by one.

        Comparing the entries with a tuple runs in C.
        """
        cs = self.cs
        entry = chunk[0]
        if entry & (FLAG_COMPRESSED | L2_OFFSET_MASK) == 0:
            if chunk != (entry,) * ENTRIES_PER_STRETCH:
                return None
            # Validates the entry (reserved bits, the zero flag on v2) once for all of them.
            (piece,) = self._entry(entry, 0, guest, table_offset, l1_index, index)
            return guest, ENTRIES_PER_STRETCH * cs, piece[2], 0, 0
        if entry & (FLAG_COMPRESSED | FLAG_ZERO):
            return None
        if chunk != tuple(range(entry, entry + ENTRIES_PER_STRETCH * cs, cs)):
            return None
        # Entries in between differ from the first only in offset bits between the first's and
        # the last's offsets, so the first and last are the only ones that can be invalid.
        # When the last is, decoding one by one names the first bad entry.
        last = chunk[-1]
        if last & L2_RESERVED_STD or last & L2_OFFSET_MASK >= self.data_size:
            return None
        (piece,) = self._entry(entry, 0, guest, table_offset, l1_index, index)
        return guest, ENTRIES_PER_STRETCH * cs, DATA, piece[3], 0

    def _where(self, table_offset: int, l1_index: int, index: int, guest: int) -> str:
        return (
            f"L2 entry {index} of the L2 table at {table_offset:#x} (L1 entry {l1_index}, file "
            f"offset {table_offset + index * (16 if self.hdr.extended_l2 else 8):#x}, guest "
            f"cluster {guest // self.cs})"
        )

    def _entry(
        self, entry: int, bitmap: int, guest: int, table_offset: int, l1_index: int, index: int
    ) -> Tuple[Piece, ...]:
        cs = self.cs
        if entry & FLAG_COMPRESSED:
            where = self._where(table_offset, l1_index, index, guest)
            if self.external:
                raise Qcow2CorruptError(
                    f"{where}: compressed cluster in an image with an external data file"
                )
            if bitmap:
                raise Qcow2CorruptError(
                    f"{where}: compressed cluster with a non-zero subcluster bitmap {bitmap:#018x}"
                )
            offset = entry & self.coffset_mask
            sectors = ((entry >> self.csize_shift) & self.csectors_mask) + 1
            if offset >= self.file_size or offset >= MAX_OFFSET:
                raise Qcow2CorruptError(
                    f"{where}: compressed cluster data at {offset:#x} lies past the end of the "
                    f"file ({self.file_size} bytes)"
                )
            return ((guest, cs, COMPRESSED, offset, sectors * 512 - (offset & 511)),)
        if entry & L2_RESERVED_STD:
            raise Qcow2CorruptError(
                f"{self._where(table_offset, l1_index, index, guest)}: reserved bits set in "
                f"{entry:#018x}"
            )
        offset = entry & L2_OFFSET_MASK
        if offset % cs:
            raise Qcow2CorruptError(
                f"{self._where(table_offset, l1_index, index, guest)}: host offset {offset:#x} "
                f"is not aligned to a cluster"
            )
        # Offset 0 means "unallocated", except in an external data file, where 0 is a real
        # offset; there every allocated cluster has the copied flag (refcount 1), as in qemu.
        allocated = bool(offset) or (self.external and bool(entry & FLAG_COPIED))
        if self.hdr.extended_l2:
            return self._subclusters(
                offset, allocated, bitmap, guest, table_offset, l1_index, index
            )
        if entry & FLAG_ZERO:
            if self.v2:
                raise Qcow2CorruptError(
                    f"{self._where(table_offset, l1_index, index, guest)}: zero flag set in a "
                    f"version 2 image (zero clusters need version 3)"
                )
            return ((guest, cs, ZERO, 0, 0),)
        if not allocated:
            return ((guest, cs, UNALLOCATED, 0, 0),)
        self._check_data(offset, table_offset, l1_index, index, guest)
        return ((guest, cs, DATA, offset, 0),)

    def _check_data(
        self, offset: int, table_offset: int, l1_index: int, index: int, guest: int
    ) -> None:
        # A host cluster may end past EOF (qemu writes only the subclusters it allocates), but
        # it must start inside the file; reads past EOF return zeros.
        if offset >= self.data_size:
            what = "the data file" if self.external else "the file"
            raise Qcow2CorruptError(
                f"{self._where(table_offset, l1_index, index, guest)}: data cluster at "
                f"{offset:#x} lies past the end of {what} ({self.data_size} bytes)"
            )

    def _subclusters(
        self,
        offset: int,
        allocated: bool,
        bitmap: int,
        guest: int,
        table_offset: int,
        l1_index: int,
        index: int,
    ) -> Tuple[Piece, ...]:
        cs = self.cs
        alloc = bitmap & ALL_SUBCLUSTERS
        zero = bitmap >> 32
        if alloc & zero:
            raise Qcow2CorruptError(
                f"{self._where(table_offset, l1_index, index, guest)}: subcluster bitmap "
                f"{bitmap:#018x} marks subclusters both allocated and zero"
            )
        if alloc and not allocated:
            raise Qcow2CorruptError(
                f"{self._where(table_offset, l1_index, index, guest)}: subcluster bitmap "
                f"{bitmap:#018x} allocates subclusters of a cluster without a host offset"
            )
        if alloc:
            self._check_data(offset, table_offset, l1_index, index, guest)
        if alloc == ALL_SUBCLUSTERS:
            return ((guest, cs, DATA, offset, 0),)
        if zero == ALL_SUBCLUSTERS:
            return ((guest, cs, ZERO, 0, 0),)
        if not alloc and not zero:
            return ((guest, cs, UNALLOCATED, 0, 0),)
        sc = cs // SUBCLUSTERS
        pieces = []
        for i in range(SUBCLUSTERS):
            bit = 1 << i
            if alloc & bit:
                pieces.append((guest + i * sc, sc, DATA, offset + i * sc, 0))
            elif zero & bit:
                pieces.append((guest + i * sc, sc, ZERO, 0, 0))
            else:
                pieces.append((guest + i * sc, sc, UNALLOCATED, 0, 0))
        return tuple(pieces)
