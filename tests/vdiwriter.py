"""A small VDI writer for the tests, written from the VirtualBox header layout (not from qemu).

Dynamic and static images with 1 MiB blocks placed in any host order, discarded (zero)
blocks, and any header field overridden; it knows what every guest byte reads as.

    w = VdiWriter(3 << 20)
    w[1] = b"data"             # block 1 holds b"data", zero-padded
    w[2] = ZERO                # block 2 discarded: reads as zeros
    built = w.build()          # built.data: the file; built.bmap_offset, built.data_offset
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Union

BLOCK = 1 << 20
SECTOR = 512
DYNAMIC, STATIC, UNDO, DIFF = 1, 2, 3, 4
NOT_ALLOCATED = 0xFFFFFFFF
DISCARDED = 0xFFFFFFFE
TEXT = b"<<< pyimagecache test VirtualBox Disk Image >>>\n"


class _Zero:
    def __repr__(self) -> str:
        return "ZERO"


ZERO = _Zero()
Content = Union[bytes, _Zero]

# field -> (offset, struct format), for overrides
FIELDS = {
    "signature": (0x40, "<I"),
    "version": (0x44, "<I"),
    "header_size": (0x48, "<I"),
    "image_type": (0x4C, "<I"),
    "image_flags": (0x50, "<I"),
    "offset_bmap": (0x154, "<I"),
    "offset_data": (0x158, "<I"),
    "sector_size": (0x168, "<I"),
    "disk_size": (0x170, "<Q"),
    "block_size": (0x178, "<I"),
    "block_extra": (0x17C, "<I"),
    "blocks_in_image": (0x180, "<I"),
    "blocks_allocated": (0x184, "<I"),
}


@dataclass
class Built:
    data: bytearray
    bmap_offset: int
    data_offset: int
    block_offsets: Dict[int, int] = field(default_factory=dict)


class VdiWriter:
    def __init__(
        self,
        disk_size: int,
        *,
        image_type: int = DYNAMIC,
        order: Optional[Sequence[int]] = None,
        extra_blocks: int = 0,
    ) -> None:
        self.disk_size = disk_size
        self.image_type = image_type
        self.count = -(-disk_size // BLOCK)
        self.blocks_in_image = self.count + extra_blocks
        self.order = order
        self.blocks: Dict[int, Content] = {}
        if image_type == STATIC:
            for i in range(self.count):
                self.blocks[i] = b""

    def __setitem__(self, index: int, content: Content) -> None:
        assert 0 <= index < self.count
        assert isinstance(content, _Zero) or len(content) <= BLOCK
        self.blocks[index] = content

    @property
    def virtual_size(self) -> int:
        return -(-self.disk_size // SECTOR) * SECTOR

    def expected(self) -> bytes:
        out = bytearray(self.virtual_size)
        for index, content in self.blocks.items():
            if isinstance(content, bytes):
                base = index * BLOCK
                chunk = content[: max(0, self.virtual_size - base)]
                out[base : base + len(chunk)] = chunk
        return bytes(out)

    def build(self, **overrides: int) -> Built:
        bmap_offset = 0x200
        bmap_bytes = -(-4 * self.blocks_in_image // SECTOR) * SECTOR
        data_offset = bmap_offset + bmap_bytes
        stored = [i for i, c in self.blocks.items() if isinstance(c, bytes)]
        order = list(self.order) if self.order is not None else sorted(stored)
        assert sorted(order) == sorted(stored)
        bmap = [NOT_ALLOCATED] * self.blocks_in_image
        for index, content in self.blocks.items():
            if isinstance(content, _Zero):
                bmap[index] = DISCARDED
        offsets: Dict[int, int] = {}
        data = bytearray()
        for slot, index in enumerate(order):
            bmap[index] = slot
            offsets[index] = data_offset + len(data)
            content = self.blocks[index]
            assert isinstance(content, bytes)
            data += content.ljust(BLOCK, b"\0")
        header = bytearray(512)
        header[: len(TEXT)] = TEXT
        values = {
            "signature": 0xBEDA107F,
            "version": 0x00010001,
            "header_size": 0x180,
            "image_type": self.image_type,
            "image_flags": 0,
            "offset_bmap": bmap_offset,
            "offset_data": data_offset,
            "sector_size": SECTOR,
            "disk_size": self.disk_size,
            "block_size": BLOCK,
            "block_extra": 0,
            "blocks_in_image": self.blocks_in_image,
            "blocks_allocated": len(order),
        }
        values.update(overrides)
        for name, value in values.items():
            at, fmt = FIELDS[name]
            struct.pack_into(fmt, header, at, value)
        header[0x188:0x198] = uuid.UUID(int=0xABC).bytes
        header[0x198:0x1A8] = uuid.UUID(int=0xDEF).bytes
        out = header + struct.pack(f"<{self.blocks_in_image}I", *bmap).ljust(bmap_bytes, b"\0")
        out += data
        return Built(bytearray(out), bmap_offset, data_offset, offsets)
