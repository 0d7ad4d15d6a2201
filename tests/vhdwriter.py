"""A small VHD writer for the tests, written from the VHD specification (not from qemu).

It lays out fixed and dynamic (and, to test refusal, differencing) disks with any block size,
blocks placed in any host order, and per-sector bitmaps, and knows what every guest byte reads
as (a clear bitmap bit reads as zeros) and which sectors are allocated.

    w = VhdWriter(8 * 4096, block_size=4096)
    w[0] = Block(b"boot", bitmap=[True] * 8)
    built = w.build()          # built.data: the file's bytes; built.bat_offset, ...
    w.expected()               # the guest disk's bytes
"""

from __future__ import annotations

import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

SECTOR = 512
FIXED, DYNAMIC, DIFFERENCING = 2, 3, 4
UNALLOCATED_ENTRY = 0xFFFFFFFF
MAX_GEOMETRY = (65535, 16, 255)
VHD_EPOCH = 946684800  # 2000-01-01 UTC


def checksum(raw: bytes) -> int:
    return ~sum(raw) & 0xFFFFFFFF


def geometry(sectors: int) -> Tuple[int, int, int]:
    """Cylinders, heads, sectors per track for a disk of ``sectors`` (the spec's appendix)."""
    sectors = min(sectors, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = sectors // spt
    else:
        spt = 17
        cth = sectors // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = sectors // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = sectors // spt
    return cth // heads, heads, spt


def footer(
    size: int,
    disk_type: int,
    data_offset: int,
    *,
    creator: bytes = b"qem2",
    chs: Optional[Tuple[int, int, int]] = None,
    version: int = 0x00010000,
) -> bytearray:
    c, h, s = chs if chs is not None else geometry(size // SECTOR)
    raw = bytearray(512)
    struct.pack_into(
        ">8sIIQI4sI4sQQHBBII16sB",
        raw,
        0,
        b"conectix",
        2,
        version,
        data_offset,
        int(time.time()) - VHD_EPOCH,
        creator,
        0x00050003,
        b"Wi2k",
        size,
        size,
        c,
        h,
        s,
        disk_type,
        0,
        uuid.UUID(int=0x1234).bytes,
        0,
    )
    struct.pack_into(">I", raw, 64, checksum(raw))
    return raw


def bitmap_bytes(bits: Sequence[bool], size: int) -> bytes:
    out = bytearray(size)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


@dataclass
class Block:
    """One allocated block: ``data`` (zero-padded to the block), ``bitmap`` (one flag per
    sector; None: every bit set)."""

    data: bytes = b""
    bitmap: Optional[List[bool]] = None


@dataclass
class Built:
    data: bytearray
    header_offset: int = 0
    bat_offset: int = 0
    block_offsets: Dict[int, int] = field(default_factory=dict)  # guest block -> host offset


class VhdWriter:
    def __init__(
        self,
        size: int,
        *,
        block_size: int = 4096,
        disk_type: int = DYNAMIC,
        creator: bytes = b"qem2",
        chs: Optional[Tuple[int, int, int]] = None,
        max_table_entries: Optional[int] = None,
        parent_name: str = "",
        order: Optional[Sequence[int]] = None,
        gap_sectors: int = 0,
    ) -> None:
        assert size % SECTOR == 0
        self.size = size
        self.block_size = block_size
        self.disk_type = disk_type
        self.creator = creator
        self.chs = chs
        self.count = -(-size // block_size)
        self.max_table_entries = self.count if max_table_entries is None else max_table_entries
        self.parent_name = parent_name
        self.order = order  # host order of the allocated blocks (default: guest order)
        self.gap_sectors = gap_sectors  # free sectors between blocks
        self.blocks: Dict[int, Block] = {}
        self.fixed_data = b""

    @property
    def bitmap_size(self) -> int:
        return -(-(self.block_size // SECTOR) // (8 * SECTOR)) * SECTOR

    def __setitem__(self, index: int, block: Block) -> None:
        assert 0 <= index < self.count
        assert len(block.data) <= self.block_size
        self.blocks[index] = block

    def expected(self) -> bytes:
        if self.disk_type == FIXED:
            return self.fixed_data.ljust(self.size, b"\0")
        out = bytearray(self.size)
        for index, block in self.blocks.items():
            data = bytearray(block.data.ljust(self.block_size, b"\0"))
            for sector, bit in enumerate(block.bitmap or []):
                if not bit:
                    data[sector * SECTOR : (sector + 1) * SECTOR] = bytes(SECTOR)
            base = index * self.block_size
            out[base : base + self.block_size] = data[: max(0, self.size - base)]
        return bytes(out)

    def allocated_sectors(self) -> List[bool]:
        """Per guest sector: does the image say it holds data?"""
        if self.disk_type == FIXED:
            return [True] * (self.size // SECTOR)
        per = self.block_size // SECTOR
        out = [False] * (self.size // SECTOR)
        for index, block in self.blocks.items():
            bits = block.bitmap if block.bitmap is not None else [True] * per
            for sector, bit in enumerate(bits):
                guest = index * per + sector
                if guest < len(out):
                    out[guest] = bit
        return out

    def build(self) -> Built:
        if self.disk_type == FIXED:
            data = bytearray(self.fixed_data.ljust(self.size, b"\0"))
            data += footer(self.size, FIXED, 0xFFFFFFFFFFFFFFFF, creator=self.creator, chs=self.chs)
            return Built(data)
        copy = footer(self.size, self.disk_type, 512, creator=self.creator, chs=self.chs)
        header_offset, bat_offset = 512, 1536
        bat_bytes = -(-4 * self.max_table_entries // SECTOR) * SECTOR
        out = bytearray(copy)
        out += self._dynamic_header(bat_offset)
        bat = bytearray(b"\xff" * bat_bytes)
        out += bat
        offsets: Dict[int, int] = {}
        order = list(self.order) if self.order is not None else sorted(self.blocks)
        assert sorted(order) == sorted(self.blocks)
        for index in order:
            out += bytes(self.gap_sectors * SECTOR)
            block = self.blocks[index]
            offsets[index] = len(out)
            struct.pack_into(">I", out, bat_offset + 4 * index, len(out) // SECTOR)
            per = self.block_size // SECTOR
            bits = block.bitmap if block.bitmap is not None else [True] * per
            out += bitmap_bytes(bits, self.bitmap_size)
            out += block.data.ljust(self.block_size, b"\0")
        out += copy
        return Built(out, header_offset, bat_offset, offsets)

    def _dynamic_header(self, bat_offset: int) -> bytearray:
        raw = bytearray(1024)
        struct.pack_into(
            ">8sQQIIII16sII",
            raw,
            0,
            b"cxsparse",
            0xFFFFFFFFFFFFFFFF,
            bat_offset,
            0x00010000,
            self.max_table_entries,
            self.block_size,
            0,
            bytes(16),
            0,
            0,
        )
        name = self.parent_name.encode("utf-16-be")[:512]
        raw[64 : 64 + len(name)] = name
        struct.pack_into(">I", raw, 36, checksum(raw))
        return raw


def refresh_checksum(data: bytearray, offset: int) -> None:
    """Recompute the checksum of the footer at ``offset`` after editing it."""
    struct.pack_into(">I", data, offset + 64, 0)
    struct.pack_into(">I", data, offset + 64, checksum(data[offset : offset + 512]))
