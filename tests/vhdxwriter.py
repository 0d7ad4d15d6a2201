"""A small VHDX writer for tests, written from [MS-VHDX] (not from qemu).

It lays out an image as qemu does (header section, log at 1 MiB, metadata region, BAT
region, then payload blocks, all on 1 MiB boundaries), with any BAT states, any placement of
the blocks, optional extra regions and metadata items, and optional log entries (data and
zero descriptors, sequence numbers, Tail) so tests can build the layouts and the damage they
need. :meth:`VhdxWriter.build` returns the bytes and :attr:`VhdxWriter.layout` the offsets.

>>> w = VhdxWriter(4 << 20, block_size=1 << 20)
>>> w.data(0, b"\\xab" * (1 << 20))
>>> image = w.build()
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from pyimagecache.vhdx.crc32c import crc32c

KiB = 1 << 10
MiB = 1 << 20

NOT_PRESENT, UNDEFINED, ZERO, UNMAPPED, FULLY_PRESENT, PARTIALLY_PRESENT = 0, 1, 2, 3, 6, 7


def g(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


BAT_GUID = g("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = g("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS = g("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = g("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE_83_DATA = g("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = g("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = g("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = g("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
VHDX_PARENT_TYPE = g("B04AEFB7-D19E-4A81-B789-25B8E9445913")


def checksum(buf: bytearray, field_at: int = 4) -> None:
    """Store the CRC-32C of ``buf`` (its checksum field zeroed first) at ``field_at``."""
    buf[field_at : field_at + 4] = bytes(4)
    struct.pack_into("<I", buf, field_at, crc32c(bytes(buf)))


@dataclass
class LogEntry:
    """One log entry: ``writes`` are (file offset, 4096 bytes) data sectors or
    (file offset, length) zero runs (length an int)."""

    sequence: int
    writes: List[Tuple[int, Union[bytes, int]]]
    tail: Optional[int] = None  # log offset of the sequence's first entry; default: its own
    flushed_file_offset: Optional[int] = None  # default: the file size
    last_file_offset: Optional[int] = None
    guid: Optional[bytes] = None  # default: the header's LogGuid
    corrupt_checksum: bool = False


@dataclass
class Layout:
    size: int = 0
    log_offset: int = MiB
    log_length: int = MiB
    metadata_offset: int = 0
    metadata_length: int = MiB
    bat_offset: int = 0
    bat_length: int = 0
    chunk_ratio: int = 0
    block_offsets: Dict[int, int] = field(default_factory=dict)
    log_entry_offsets: List[int] = field(default_factory=list)  # positions in the log

    def bat_index(self, block: int) -> int:
        return block + block // self.chunk_ratio

    def bat_entry_offset(self, block: int) -> int:
        return self.bat_offset + 8 * self.bat_index(block)


class VhdxWriter:
    def __init__(
        self,
        virtual_size: int,
        *,
        block_size: int = MiB,
        logical_sector_size: int = 512,
        physical_sector_size: int = 4096,
        log_length: int = MiB,
        fixed: bool = False,
    ) -> None:
        self.virtual_size = virtual_size
        self.block_size = block_size
        self.logical_sector_size = logical_sector_size
        self.physical_sector_size = physical_sector_size
        self.log_length = log_length
        self.fixed = fixed
        self.states: Dict[int, int] = {}
        self.contents: Dict[int, bytes] = {}
        self.raw_entries: Dict[int, int] = {}  # block -> full 64-bit BAT entry override
        self.order: Optional[List[int]] = None  # placement order of data blocks in the file
        self.gap_mib = 0  # free MiB between data blocks
        self.extra_regions: List[Tuple[bytes, int, int, int]] = []  # guid, offset, len, flags
        self.extra_items: List[Tuple[bytes, bytes, int]] = []  # guid, data, flags
        self.has_parent = False
        self.parent_locator: Optional[Dict[str, str]] = None
        self.log_entries: List[LogEntry] = []
        self.log_start = 0  # log offset of the first entry
        self.log_guid = bytes(16)
        self.sequence_numbers = (10, 11)
        self.layout = Layout()
        self.truncate_to: Optional[int] = None
        self.metadata_length = MiB  # compact seeds use less (at least 64 KiB + the items)
        self.bat_length: Optional[int] = None  # default: the entries, rounded up to 1 MiB

    # -- contents --------------------------------------------------------------------------
    def data(self, block: int, content: bytes) -> None:
        """Block ``block`` is FULLY_PRESENT with ``content`` (padded to the block size)."""
        assert len(content) <= self.block_size
        self.states[block] = FULLY_PRESENT
        self.contents[block] = content

    def state(self, block: int, state: int) -> None:
        self.states[block] = state
        self.contents.pop(block, None)

    @property
    def blocks(self) -> int:
        return -(-self.virtual_size // self.block_size)

    def expected(self) -> bytes:
        """The guest bytes the image holds (before any log replay)."""
        out = bytearray(self.virtual_size)
        for block, content in self.contents.items():
            start = block * self.block_size
            piece = content[: max(0, self.virtual_size - start)]
            out[start : start + len(piece)] = piece
        return bytes(out)

    # -- building --------------------------------------------------------------------------
    def build(self) -> bytes:
        lay = self.layout = Layout()
        bs = self.block_size
        lay.chunk_ratio = (1 << 23) * self.logical_sector_size // bs
        blocks = self.blocks
        entries = blocks + (blocks - 1) // lay.chunk_ratio if blocks else 0
        lay.log_offset, lay.log_length = MiB, self.log_length
        lay.metadata_offset = lay.log_offset + self.log_length
        lay.metadata_length = self.metadata_length
        lay.bat_offset = lay.metadata_offset + lay.metadata_length
        lay.bat_length = self.bat_length or max(MiB, -(-entries * 8 // MiB) * MiB)
        pos = -(-(lay.bat_offset + lay.bat_length) // MiB) * MiB
        for _guid, offset, length, _flags in self.extra_regions:
            pos = max(pos, -(-(offset + length) // MiB) * MiB)
        default = FULLY_PRESENT if self.fixed else NOT_PRESENT
        present = [b for b in range(blocks) if self.states.get(b, default) == FULLY_PRESENT]
        data_blocks = self.order if self.order is not None else present
        for block in data_blocks:
            lay.block_offsets[block] = pos
            pos += bs + self.gap_mib * MiB
        lay.size = pos
        img = bytearray(pos)
        img[0:8] = b"vhdxfile"
        creator = "pyimagecache tests".encode("utf-16-le")
        img[8 : 8 + len(creator)] = creator
        for which, offset in enumerate((64 * KiB, 128 * KiB)):
            img[offset : offset + 4 * KiB] = self._header(self.sequence_numbers[which])
        region = self._region_table()
        img[192 * KiB : 256 * KiB] = region
        img[256 * KiB : 320 * KiB] = region
        meta = self._metadata()
        img[lay.metadata_offset : lay.metadata_offset + len(meta)] = meta
        for block in range(blocks):
            value = self.states.get(block, default)
            if block in lay.block_offsets:
                value = FULLY_PRESENT | (lay.block_offsets[block] // MiB) << 20
            value = self.raw_entries.get(block, value)
            struct.pack_into("<Q", img, lay.bat_entry_offset(block), value)
        for block, offset in lay.block_offsets.items():
            content = self.contents.get(block, b"")
            img[offset : offset + len(content)] = content
        self._write_log(img)
        if self.truncate_to is not None:
            del img[self.truncate_to :]
        return bytes(img)

    def _header(self, sequence: int) -> bytearray:
        h = bytearray(4 * KiB)
        struct.pack_into(
            "<4sIQ16s16s16sHHIQ", h, 0, b"head", 0, sequence, uuid.uuid4().bytes_le,
            uuid.uuid4().bytes_le, self.log_guid, 0, 1, self.log_length, self.layout.log_offset,
        )  # fmt: skip
        checksum(h)
        return h

    def _region_table(self) -> bytearray:
        lay = self.layout
        rows = [(BAT_GUID, lay.bat_offset, lay.bat_length, 1),
                (METADATA_GUID, lay.metadata_offset, lay.metadata_length, 1)]  # fmt: skip
        rows += self.extra_regions
        t = bytearray(64 * KiB)
        struct.pack_into("<4sIII", t, 0, b"regi", 0, len(rows), 0)
        for i, (guid, offset, length, flags) in enumerate(rows):
            struct.pack_into("<16sQII", t, 16 + 32 * i, guid, offset, length, flags)
        checksum(t)
        return t

    def _metadata(self) -> bytearray:
        params = (1 if self.fixed else 0) | (2 if self.has_parent else 0)
        items: List[Tuple[bytes, bytes, int]] = [
            (FILE_PARAMETERS, struct.pack("<II", self.block_size, params), 4),
            (VIRTUAL_DISK_SIZE, struct.pack("<Q", self.virtual_size), 6),
            (PAGE_83_DATA, uuid.uuid4().bytes_le, 6),
            (LOGICAL_SECTOR_SIZE, struct.pack("<I", self.logical_sector_size), 6),
            (PHYSICAL_SECTOR_SIZE, struct.pack("<I", self.physical_sector_size), 6),
        ]
        if self.parent_locator is not None:
            items.append((PARENT_LOCATOR, self._locator(self.parent_locator), 6))
        items += self.extra_items
        m = bytearray(64 * KiB)
        struct.pack_into("<8sHH", m, 0, b"metadata", 0, len(items))
        offset = 64 * KiB
        for i, (guid, data, flags) in enumerate(items):
            struct.pack_into("<16sIII", m, 32 + 32 * i, guid, offset, len(data), flags)
            m += data
            offset += len(data)
        return m

    @staticmethod
    def _locator(pairs: Dict[str, str]) -> bytes:
        head = struct.pack("<16sHH", VHDX_PARENT_TYPE, 0, len(pairs))
        table = b""
        strings = b""
        base = len(head) + 12 * len(pairs)
        for key, value in pairs.items():
            k, v = key.encode("utf-16-le"), value.encode("utf-16-le")
            table += struct.pack("<IIHH", base + len(strings), base + len(strings) + len(k),
                                 len(k), len(v))  # fmt: skip
            strings += k + v
        return head + table + strings

    # -- the log ---------------------------------------------------------------------------
    def _write_log(self, img: bytearray) -> None:
        lay = self.layout
        pos = self.log_start
        first = pos
        for entry in self.log_entries:
            raw = self._log_entry(entry, first if entry.tail is None else entry.tail, len(img))
            lay.log_entry_offsets.append(pos)
            for i in range(0, len(raw), 4 * KiB):  # wrap around the circular buffer
                at = lay.log_offset + (pos + i) % lay.log_length
                img[at : at + 4 * KiB] = raw[i : i + 4 * KiB]
            pos = (pos + len(raw)) % lay.log_length

    def _log_entry(self, entry: LogEntry, tail: int, size: int) -> bytearray:
        seq = entry.sequence
        desc_sectors = -(-(len(entry.writes) + 2) // 128)
        datas = [w for w in entry.writes if isinstance(w[1], bytes)]
        total = (desc_sectors + len(datas)) * 4 * KiB
        buf = bytearray(total)
        struct.pack_into(
            "<4sIIIQII16sQQ", buf, 0, b"loge", 0, total, tail, seq, len(entry.writes), 0,
            entry.guid if entry.guid is not None else self.log_guid,
            size if entry.flushed_file_offset is None else entry.flushed_file_offset,
            size if entry.last_file_offset is None else entry.last_file_offset,
        )  # fmt: skip
        data_at = desc_sectors * 4 * KiB
        for i, (offset, what) in enumerate(entry.writes):
            at = 64 + 32 * i
            if isinstance(what, int):
                struct.pack_into("<4sIQQQ", buf, at, b"zero", 0, what, offset, seq)
                continue
            assert len(what) == 4 * KiB
            buf[at : at + 4] = b"desc"
            buf[at + 4 : at + 8] = what[4092:4096]
            buf[at + 8 : at + 16] = what[0:8]
            struct.pack_into("<QQ", buf, at + 16, offset, seq)
            struct.pack_into("<4sI", buf, data_at, b"data", seq >> 32)
            buf[data_at + 8 : data_at + 4092] = what[8:4092]
            struct.pack_into("<I", buf, data_at + 4092, seq & 0xFFFFFFFF)
            data_at += 4 * KiB
        checksum(buf)
        if entry.corrupt_checksum:
            buf[4] ^= 0xFF
        return buf


def bat_sector_with(image: bytes, layout: Layout, block: int, value: int) -> Tuple[int, bytes]:
    """The 4 KiB BAT sector holding ``block``'s entry, with that entry set to ``value``:
    what a log entry that updates the BAT carries."""
    at = layout.bat_entry_offset(block)
    sector = at - at % (4 * KiB)
    data = bytearray(image[sector : sector + 4 * KiB])
    struct.pack_into("<Q", data, at - sector, value)
    return sector, bytes(data)


def refresh_checksums(img: bytearray) -> None:
    """Recompute both headers' and both region tables' checksums after editing them."""
    for offset, size in ((64 * KiB, 4 * KiB), (128 * KiB, 4 * KiB), (192 * KiB, 64 * KiB),
                         (256 * KiB, 64 * KiB)):  # fmt: skip
        part = bytearray(img[offset : offset + size])
        checksum(part)
        img[offset : offset + size] = part
