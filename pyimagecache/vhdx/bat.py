"""The Block Allocation Table: payload block states and offsets ([MS-VHDX] 2.5).

Entries are 64-bit: the state in bits 0-2, bits 3-19 reserved (zero), the file offset in MiB
in bits 20-63. After every ``chunk_ratio`` payload block entries comes one sector bitmap block
entry (used by differencing disks only, which this reader refuses, so they are skipped as
qemu skips them). chunk_ratio = 2^23 * logical sector size / block size.

The table is read in chunks of whole (payload entries + bitmap entry) groups, about 1 MiB
each, and a few are kept for random reads: memory stays bounded whatever the disk size. It is
validated once at open, a chunk at a time, with byte-level fast paths (the low byte of every
payload entry translated to a kind letter), so that per-entry Python work is done only for
allocated blocks, whose number the file size bounds.
"""

from __future__ import annotations

import re
import struct
import threading
from collections import OrderedDict
from typing import Iterator, List, NamedTuple, Tuple

from ..diskimage import DATA, UNALLOCATED, ZERO
from ..errors import VhdxCorruptError
from .header import HEADER_SECTION_SIZE, Header, MiB, Reader, Region, RegionTable
from .metadata import Metadata

NOT_PRESENT = 0
UNDEFINED = 1
ZERO_STATE = 2
UNMAPPED = 3
UNMAPPED_V095 = 5  # the value of UNMAPPED in the 0.95 draft; qemu reads it as zeros too
FULLY_PRESENT = 6
PARTIALLY_PRESENT = 7
STATE_NAMES = {
    NOT_PRESENT: "NOT_PRESENT",
    UNDEFINED: "UNDEFINED",
    ZERO_STATE: "ZERO",
    UNMAPPED: "UNMAPPED",
    UNMAPPED_V095: "UNMAPPED (v0.95)",
    FULLY_PRESENT: "FULLY_PRESENT",
    PARTIALLY_PRESENT: "PARTIALLY_PRESENT",
}
OFFSET_MASK = ~(MiB - 1) & ((1 << 64) - 1)
RESERVED_MASK = 0xFFFF8  # bits 3-19

#: Guest-visible kind of each payload state, as one letter per entry: U(nallocated),
#: Z(ero), D(ata), P(artially present), ! (invalid: an unknown state or reserved bits 3-7 set).
_KIND_LETTER = {NOT_PRESENT: b"U", UNDEFINED: b"U", ZERO_STATE: b"Z", UNMAPPED: b"Z"}
_KIND_LETTER.update({UNMAPPED_V095: b"Z", FULLY_PRESENT: b"D", PARTIALLY_PRESENT: b"P"})
_KIND_TABLE = bytes(_KIND_LETTER.get(v, b"!")[0] for v in range(256))
_LOW_NIBBLE_TABLE = bytes(v & 0x0F for v in range(256))
_KIND_OF_LETTER = {ord("U"): UNALLOCATED, ord("Z"): ZERO, ord("D"): DATA}
_RUN = re.compile(rb"U+|Z+|D+")
_ENTRY = struct.Struct("<Q")

CHUNK_BYTES = MiB
_CACHE_CHUNKS = 4  # 4 MiB of BAT for random reads


class Run(NamedTuple):
    """``blocks`` payload blocks from block ``first``, all of one kind."""

    first: int
    blocks: int
    kind: str


# Slot owners in the file-space map (one byte per MiB of the file).
_FREE, _HEADERS, _LOG, _BAT, _METADATA, _REGION, _PAYLOAD = range(7)
_OWNER_NAMES = {
    _HEADERS: "the header section",
    _LOG: "the log",
    _BAT: "the BAT region",
    _METADATA: "the metadata region",
    _REGION: "another region",
    _PAYLOAD: "another payload block",
}


class Bat:
    """The validated BAT of one image."""

    def __init__(
        self,
        read: Reader,
        meta: Metadata,
        header: Header,
        regions: RegionTable,
        file_size: int,
    ) -> None:
        self._read = read
        self.block_size = meta.block_size
        self.virtual_size = meta.virtual_size
        self.chunk_ratio = (1 << 23) * meta.logical_sector_size // meta.block_size
        self.blocks = -(-meta.virtual_size // meta.block_size)
        cr = self.chunk_ratio
        # qemu's vhdx_calc_bat_entries for a disk without a parent
        self.entries = self.blocks + (self.blocks - 1) // cr if self.blocks else 0
        self.region: Region = regions.bat
        self.file_size = file_size
        if self.entries * 8 > self.region.length:
            raise VhdxCorruptError(
                f"vhdx BAT: the region at {self.region.file_offset:#x} is {self.region.length} "
                f"bytes, too small for the {self.entries} entries a {self.virtual_size}-byte "
                f"disk of {self.block_size}-byte blocks needs"
            )
        group = cr + 1
        self.groups_per_chunk = max(1, CHUNK_BYTES // 8 // group)
        self.blocks_per_chunk = self.groups_per_chunk * cr
        self.chunk_entries = self.groups_per_chunk * group
        self.chunks = -(-self.blocks // self.blocks_per_chunk)
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._validate(header, regions)

    # -- reading the table -------------------------------------------------------------------
    def _load(self, index: int) -> bytes:
        first = index * self.chunk_entries
        count = min(self.entries, first + self.chunk_entries) - first
        offset = self.region.file_offset + first * 8
        data = self._read(count * 8, offset)
        if len(data) < count * 8:
            raise VhdxCorruptError(f"vhdx BAT: truncated at {offset + len(data):#x}")
        return data

    def chunk(self, index: int) -> bytes:
        with self._lock:
            data = self._cache.get(index)
            if data is not None:
                self._cache.move_to_end(index)
                return data
        data = self._load(index)
        with self._lock:
            self._cache[index] = data
            while len(self._cache) > _CACHE_CHUNKS:
                self._cache.popitem(last=False)
        return data

    def _payload(self, data: bytes) -> bytes:
        """The payload entries of a chunk, without its sector bitmap entries."""
        cr, group = self.chunk_ratio, self.chunk_ratio + 1
        if len(data) <= cr * 8:
            return data
        return b"".join(
            data[g * group * 8 : (g * group + cr) * 8] for g in range(-(-len(data) // (group * 8)))
        )

    def _payload_count(self, entries: int) -> int:
        """Payload entries among the first ``entries`` of a chunk."""
        cr, group = self.chunk_ratio, self.chunk_ratio + 1
        return entries - max(0, -(-(entries - cr) // group))

    def entry(self, block: int) -> int:
        """The BAT entry of payload block ``block``."""
        index, within = divmod(block, self.blocks_per_chunk)
        value: int = _ENTRY.unpack_from(
            self.chunk(index), 8 * (within + within // self.chunk_ratio)
        )[0]
        return value

    def bat_index(self, block: int) -> int:
        return block + block // self.chunk_ratio

    # -- validation --------------------------------------------------------------------------
    def _where(self, block: int) -> str:
        index = self.bat_index(block)
        return (
            f"vhdx BAT entry {index} (payload block {block}, at "
            f"{self.region.file_offset + 8 * index:#x})"
        )

    def _validate(self, header: Header, regions: RegionTable) -> None:
        """Every payload entry: a known state, reserved bits zero, and for FULLY_PRESENT a
        block inside the file overlapping neither the header section, the log, a region nor
        another block (qemu's vhdx_check_bat_entries plus the overlap checks it only makes
        against regions)."""
        slots = bytearray(-(-self.file_size // MiB))

        def claim(start: int, end: int, owner: int) -> None:
            slots[start // MiB : -(-end // MiB)] = bytes([owner]) * (-(-end // MiB) - start // MiB)

        claim(0, HEADER_SECTION_SIZE, _HEADERS)
        if header.log_length:
            claim(header.log_offset, header.log_offset + header.log_length, _LOG)
        for region in regions.regions:
            if region is regions.bat:
                owner = _BAT
            elif region is regions.metadata:
                owner = _METADATA
            else:
                owner = _REGION
            if region.length:
                claim(region.file_offset, region.end, owner)
        bs = self.block_size
        for index in range(self.chunks):
            data = self.chunk(index) if index == 0 else self._load(index)
            if not data.strip(b"\0"):
                continue
            payload = self._payload(data)
            count = len(payload) // 8
            base = index * self.blocks_per_chunk
            kinds = payload[0::8].translate(_KIND_TABLE)
            bad = kinds.find(b"!")
            reserved_ok = (
                payload[1::8].count(0) == count
                and payload[2::8].translate(_LOW_NIBBLE_TABLE).count(0) == count
            )
            if bad < 0 and not reserved_ok:
                bad = next(
                    i for i in range(count) if _ENTRY.unpack_from(payload, 8 * i)[0] & RESERVED_MASK
                )
            if bad >= 0:
                value = _ENTRY.unpack_from(payload, 8 * bad)[0]
                state = value & 7
                what = (
                    f"reserved bits {value & RESERVED_MASK:#x} are set"
                    if value & RESERVED_MASK
                    else f"state {state} is not a payload block state"
                )
                raise VhdxCorruptError(f"{self._where(base + bad)}: {what} (entry {value:#018x})")
            partial = kinds.find(b"P")
            if partial >= 0:
                raise VhdxCorruptError(
                    f"{self._where(base + partial)}: PARTIALLY_PRESENT, which only a "
                    "differencing disk may use, and this one has no parent"
                )
            pos = kinds.find(b"D")
            while pos >= 0:
                block = base + pos
                offset = _ENTRY.unpack_from(payload, 8 * pos)[0] & OFFSET_MASK
                # qemu allows the last block to be only partly in the file
                needed = min(bs, self.virtual_size - block * bs)
                if offset + needed > self.file_size:
                    raise VhdxCorruptError(
                        f"{self._where(block)}: the block at {offset:#x} ({needed} bytes) runs "
                        f"past the end of the file ({self.file_size} bytes; truncated image?)"
                    )
                lo, hi = offset // MiB, -(-(offset + needed) // MiB)
                taken = next((s for s in slots[lo:hi] if s), _FREE)
                if taken:
                    raise VhdxCorruptError(
                        f"{self._where(block)}: the block at {offset:#x} ({needed} bytes) "
                        f"overlaps {_OWNER_NAMES[taken]}"
                    )
                slots[lo:hi] = bytes([_PAYLOAD]) * (hi - lo)
                pos = kinds.find(b"D", pos + 1)

    # -- mapping -----------------------------------------------------------------------------
    def runs(self) -> Iterator[Run]:
        """Merged runs of payload blocks by kind, covering every block once."""
        pending: List[Run] = []
        for index in range(self.chunks):
            data = self.chunk(index)
            base = index * self.blocks_per_chunk
            if not data.strip(b"\0"):
                found: Iterator[Tuple[int, int, str]] = iter(
                    [(0, self._payload_count(len(data) // 8), UNALLOCATED)]
                )
            else:
                kinds = self._payload(data)[0::8].translate(_KIND_TABLE)
                found = ((m.start(), m.end() - m.start(), _KIND_OF_LETTER[kinds[m.start()]])
                         for m in _RUN.finditer(kinds))  # fmt: skip
            for start, count, kind in found:
                if pending and pending[0].kind == kind:
                    pending[0] = Run(pending[0].first, pending[0].blocks + count, kind)
                    continue
                if pending:
                    yield pending[0]
                pending = [Run(base + start, count, kind)]
        if pending:
            yield pending[0]
