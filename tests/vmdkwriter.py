"""A small pure-Python VMDK writer for tests (not shipped), written from VMware's "Virtual Disk
Format 5.0" description of hosted sparse extents.

It writes monolithicSparse extents (embedded descriptor, optional redundant grain directory,
zero grains with the zeroed-grain flag, grains in any host order) and streamOptimized extents,
either VMware's way (grains with markers, each grain table after its grains behind a GT
marker, the directory behind a GD marker, then footer and end-of-stream markers, gdOffset
GD_AT_END in the header) or qemu's way (directory and tables preallocated after the header).
:class:`Built` keeps the offset of every structure so that tests can corrupt any field.

Example::

    w = VmdkWriter(5 * 65536 + 512, stream=True)
    w[0] = b"boot" * 100
    w[3] = ZERO_GRAIN  # needs zero_grain=True, sparse only
    built = w.build()
    built.save(path)
    assert built.expected() == raw_bytes
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

SECTOR = 512
MAGIC = b"KDMV"
GD_AT_END = 0xFFFF_FFFF_FFFF_FFFF
FLAG_NL = 1
FLAG_RGD = 2
FLAG_ZERO_GRAIN = 4
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17

# name -> (offset, struct format) of every header field
HEADER_FIELDS: Dict[str, Tuple[int, str]] = {
    "magic": (0, "<4s"),
    "version": (4, "<I"),
    "flags": (8, "<I"),
    "capacity": (12, "<Q"),
    "grainSize": (20, "<Q"),
    "descriptorOffset": (28, "<Q"),
    "descriptorSize": (36, "<Q"),
    "numGTEsPerGT": (44, "<I"),
    "rgdOffset": (48, "<Q"),
    "gdOffset": (56, "<Q"),
    "overHead": (64, "<Q"),
    "uncleanShutdown": (72, "<B"),
    "checkBytes": (73, "<4s"),
    "compressAlgorithm": (77, "<H"),
}


class _ZeroGrain:
    def __repr__(self) -> str:
        return "ZERO_GRAIN"


#: A grain table entry of 1: a grain of zeros (needs zero_grain=True).
ZERO_GRAIN = _ZeroGrain()
Content = Union[bytes, _ZeroGrain]


def _sectors(n: int) -> int:
    return -(-n // SECTOR)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % SECTOR)


def descriptor_text(create_type: str, extent_lines: List[str], cid: int = 0x12345678,
                    parent_cid: int = 0xFFFFFFFF, extra: str = "") -> bytes:  # fmt: skip
    lines = [
        "# Disk DescriptorFile",
        "version=1",
        f"CID={cid:08x}",
        f"parentCID={parent_cid:08x}",
        f'createType="{create_type}"',
        "",
        "# Extent description",
        *extent_lines,
        "",
        "# The Disk Data Base",
        "#DDB",
        "",
        'ddb.virtualHWVersion = "4"',
        'ddb.adapterType = "ide"',
    ]
    return ("\n".join(lines) + "\n" + extra).encode()


@dataclass
class Built:
    """A written extent and where everything sits in it (byte offsets)."""

    data: bytearray
    writer: VmdkWriter
    gd_offset: int = 0
    gt_offsets: Dict[int, int] = field(default_factory=dict)  # table index -> offset
    grain_offsets: Dict[int, int] = field(default_factory=dict)  # grain -> marker/data offset
    footer_offset: Optional[int] = None  # the footer header (a copy of the header)
    descriptor_offset: int = 0

    def bytes(self) -> bytes:
        return bytes(self.data)

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        with open(path, "wb") as f:
            f.write(self.data)

    def expected(self) -> bytes:
        return self.writer.expected()

    def set_header(self, name: str, value: object, footer: bool = False) -> None:
        offset, fmt = HEADER_FIELDS[name]
        base = self.footer_offset if footer else 0
        assert base is not None
        struct.pack_into(fmt, self.data, base + offset, value)

    def set_gt_entry(self, table: int, entry: int, value: int) -> None:
        struct.pack_into("<I", self.data, self.gt_offsets[table] + 4 * entry, value)

    def set_gd_entry(self, index: int, value: int) -> None:
        struct.pack_into("<I", self.data, self.gd_offset + 4 * index, value)


class VmdkWriter:
    """Guest grains -> a monolithicSparse or streamOptimized extent."""

    def __init__(
        self,
        size: int,
        *,
        grain_sectors: int = 128,
        gtes_per_gt: int = 512,
        stream: bool = False,
        gd_at_end: bool = True,
        zero_grain: bool = False,
        rgd: bool = True,
        shuffle: Optional[int] = None,
        level: int = 6,
        descriptor: bool = True,
        cid: int = 0x1234ABCD,
    ) -> None:
        assert size % SECTOR == 0, "VMDK capacities are whole sectors"
        self.size = size
        self.grain_sectors = grain_sectors
        self.grain = grain_sectors * SECTOR
        self.gtes = gtes_per_gt
        self.stream = stream
        self.gd_at_end = gd_at_end and stream
        self.zero_grain = zero_grain
        self.rgd = rgd and not self.gd_at_end
        self.shuffle = shuffle  # seed: grains stored in a random host order
        self.level = level
        self.descriptor = descriptor
        self.cid = cid
        self.grains: Dict[int, Content] = {}

    @property
    def nb_grains(self) -> int:
        return -(-self.size // self.grain)

    @property
    def nb_tables(self) -> int:
        return -(-self.nb_grains // self.gtes)

    def grain_length(self, index: int) -> int:
        return min(self.grain, self.size - index * self.grain)

    def __setitem__(self, index: int, content: Content) -> None:
        assert 0 <= index < self.nb_grains, index
        if isinstance(content, bytes):
            assert len(content) <= self.grain_length(index)
        else:
            assert self.zero_grain
        self.grains[index] = content

    def expected(self) -> bytes:
        out = bytearray(self.size)
        for index, content in self.grains.items():
            if isinstance(content, bytes):
                out[index * self.grain : index * self.grain + len(content)] = content
        return bytes(out)

    # -- building -------------------------------------------------------------------------
    def _header(
        self, gd_sector: int, rgd_sector: int, overhead: int, desc: Tuple[int, int]
    ) -> bytes:
        flags = FLAG_NL | (FLAG_RGD if self.rgd else 0)
        flags |= FLAG_ZERO_GRAIN if self.zero_grain else 0
        flags |= (FLAG_COMPRESSED | FLAG_MARKERS) if self.stream else 0
        version = 3 if self.stream else (2 if self.zero_grain else 1)
        head = struct.pack(
            "<4sIIQQQQIQQQB4sH",
            MAGIC, version, flags, self.size // SECTOR, self.grain_sectors, desc[0], desc[1],
            self.gtes, rgd_sector, gd_sector, overhead, 0, b"\n \r\n", 1 if self.stream else 0,
        )  # fmt: skip
        return _pad(head)

    def _descriptor(self) -> bytes:
        kind = "streamOptimized" if self.stream else "monolithicSparse"
        return descriptor_text(kind, [f'RW {self.size // SECTOR} SPARSE "disk.vmdk"'], cid=self.cid)

    def _payload(self, index: int, content: bytes) -> bytes:
        grain = content + bytes(self.grain_length(index) - len(content))
        if not self.stream:
            return grain + bytes(self.grain - len(grain))
        stream = zlib.compress(grain, self.level)
        return _pad(struct.pack("<QI", index * self.grain_sectors, len(stream)) + stream)

    def _order(self) -> List[int]:
        order = sorted(i for i, c in self.grains.items() if isinstance(c, bytes))
        if self.shuffle is not None:
            random.Random(self.shuffle).shuffle(order)
        return order

    def build(self) -> Built:
        desc = _pad(self._descriptor()) if self.descriptor else b""
        desc_sectors = max(20, _sectors(len(desc))) if desc else 0
        gd_sectors = _sectors(4 * self.nb_tables)
        gt_sectors = _sectors(4 * self.gtes)
        tables = [[0] * self.gtes for _ in range(self.nb_tables)]
        for index, content in self.grains.items():
            if not isinstance(content, bytes):
                tables[index // self.gtes][index % self.gtes] = 1
        if self.gd_at_end:
            return self._build_stream(desc, desc_sectors, gd_sectors, gt_sectors, tables)

        sector = 1 + desc_sectors
        rgd = 0
        if self.rgd:
            rgd = sector
            sector += gd_sectors + gt_sectors * self.nb_tables
        gd = sector
        sector += gd_sectors
        gts = [sector + i * gt_sectors for i in range(self.nb_tables)]
        sector += gt_sectors * self.nb_tables
        overhead = -(-sector // self.grain_sectors) * self.grain_sectors
        out = bytearray(overhead * SECTOR)
        built = Built(out, self, gd_offset=gd * SECTOR)
        built.gt_offsets = {t: s * SECTOR for t, s in enumerate(gts)}
        for index in self._order():
            content = self.grains[index]
            assert isinstance(content, bytes)
            at = len(out)
            built.grain_offsets[index] = at
            tables[index // self.gtes][index % self.gtes] = at // SECTOR
            out += self._payload(index, content)
        out[0:SECTOR] = self._header(gd, rgd, overhead, (1 if desc else 0, desc_sectors))
        if desc:
            out[SECTOR : SECTOR + len(desc)] = desc
            built.descriptor_offset = SECTOR
        copies = [(gd, gts)]
        if rgd:
            copies.append((rgd, [rgd + gd_sectors + t * gt_sectors for t in range(len(gts))]))
        for directory, entries in copies:
            out[directory * SECTOR : directory * SECTOR + 4 * len(entries)] = struct.pack(
                f"<{len(entries)}I", *entries
            )
            for t, table in enumerate(tables):
                at = entries[t] * SECTOR
                out[at : at + 4 * self.gtes] = struct.pack(f"<{self.gtes}I", *table)
        return built

    def _build_stream(
        self, desc: bytes, desc_sectors: int, gd_sectors: int, gt_sectors: int,
        tables: List[List[int]],
    ) -> Built:  # fmt: skip
        """VMware's layout: grains, each table after its grains, directory, footer, EOS."""
        overhead = -(-(1 + desc_sectors) // self.grain_sectors) * self.grain_sectors
        out = bytearray(overhead * SECTOR)
        if desc:
            out[SECTOR : SECTOR + len(desc)] = desc
        built = Built(out, self, descriptor_offset=SECTOR if desc else 0)
        order = self._order()
        directory = [0] * self.nb_tables
        for t in range(self.nb_tables):
            mine = [i for i in order if i // self.gtes == t]
            for index in mine:
                content = self.grains[index]
                assert isinstance(content, bytes)
                built.grain_offsets[index] = len(out)
                tables[t][index % self.gtes] = len(out) // SECTOR
                out += self._payload(index, content)
            if not any(tables[t]):
                continue  # VMware writes no table for a stretch of unallocated grains
            out += _pad(struct.pack("<QII", gt_sectors, 0, 1))
            directory[t] = len(out) // SECTOR
            built.gt_offsets[t] = len(out)
            out += _pad(struct.pack(f"<{self.gtes}I", *tables[t]))
        out += _pad(struct.pack("<QII", gd_sectors, 0, 2))
        gd = len(out) // SECTOR
        built.gd_offset = len(out)
        out += _pad(struct.pack(f"<{self.nb_tables}I", *directory))
        out += _pad(struct.pack("<QII", 1, 0, 3))
        built.footer_offset = len(out)
        desc_at = (1 if desc else 0, desc_sectors)
        out += self._header(gd, 0, overhead, desc_at)
        out += bytes(SECTOR)  # end-of-stream marker: all zero
        out[0:SECTOR] = self._header(GD_AT_END, 0, overhead, desc_at)
        return built
