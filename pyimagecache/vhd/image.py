"""The VHD image object: fixed and dynamic disks, validated on open, read with positional reads.

A fixed disk is its guest data followed by the footer. A dynamic disk starts with a copy of
the footer, then the dynamic header, the block allocation table (BAT: big-endian sector
offsets, 0xffffffff for a block never written) and the blocks, each a sector bitmap followed
by the block's data. A clear bitmap bit means the guest never wrote that sector: it reads as
zeros (the VHD spec; qemu ignores the bitmap and reads the block, which holds the same zeros
in every image qemu writes, since it sets every bit of a block it allocates). Differencing
disks are refused.
"""

from __future__ import annotations

import re
import sys
from array import array
from typing import Any, Dict, Iterator, Optional

from .._blockmap import SourceImage, actual_size, allocated, find_overlap, merged, run_end
from ..diskimage import DATA, UNALLOCATED, Extent
from ..errors import VhdCorruptError, VhdUnsupportedError
from ..rawimage import RawImage
from ..sourcefile import SourceFile
from .footer import (
    DIFFERENCING,
    DYNAMIC_HEADER_SIZE,
    FIXED,
    FOOTER_COOKIE,
    FOOTER_SIZE,
    MAX_TABLE_ENTRIES,
    QEMU_MAX_TABLE_ENTRIES,
    SECTOR,
    DynamicHeader,
    Footer,
    parse_dynamic_header,
    parse_footer,
)

UNALLOCATED_ENTRY = 0xFFFFFFFF
_UNALLOCATED_BYTES = b"\xff\xff\xff\xff"
_CLEAR = re.compile("0+")


def _corrupt(message: str) -> VhdCorruptError:
    return VhdCorruptError(f"VHD {message}")


def _bits(bitmap: bytes, first: int, count: int) -> str:
    """Bits ``first`` .. ``first + count`` of ``bitmap`` (most significant bit of byte 0
    first, as the VHD spec numbers sectors) as a string of '0' and '1'."""
    every = bin(int.from_bytes(bitmap, "big") | (1 << 8 * len(bitmap)))[3:]
    return every[first : first + count]


class VhdImage(SourceImage):
    """An open fixed or dynamic VHD. Use :func:`open_image`."""

    format = "vhd"  # qemu-img calls the format "vpc"
    granularity = SECTOR
    has_backing = False

    def __init__(self, source: SourceFile) -> None:
        super().__init__(source)
        self.dynamic: Optional[DynamicHeader] = None
        self._bat: bytes = b""
        self._entries: array = array("I")  # type: ignore[type-arg]
        #: Per block: 1 once extents() has seen every bit of its bitmap set, so reads skip it
        #: (single-byte stores; a read that races one just reads the bitmap itself).
        self._full = bytearray()
        try:
            self.footer = self._read_footer()
            self.virtual_size = self.footer.virtual_size
            if self.footer.disk_type == FIXED:
                self._check_fixed()
            else:
                self._open_dynamic()
        except BaseException:
            self.close()
            raise

    # -- opening ----------------------------------------------------------------------------
    def _read_footer(self) -> Footer:
        size = self.file.size
        if size < FOOTER_SIZE:
            raise _corrupt(f"file is {size} bytes, smaller than a footer (512 bytes)")
        head = self.file.pread(FOOTER_SIZE, 0)
        if head.startswith(FOOTER_COOKIE):
            footer = parse_footer(head, 0)
            if footer.disk_type == FIXED:
                # qemu-img takes a footer at offset 0 for a dynamic disk's and fails.
                raise _corrupt(
                    "footer at offset 0 has disk type 2 (fixed) at offset 0x3c: a fixed disk "
                    "has its footer only at the end of the file"
                )
            return footer
        offset = size - FOOTER_SIZE
        footer = parse_footer(self.file.pread(FOOTER_SIZE, offset), offset)
        if footer.disk_type != FIXED:
            raise _corrupt(
                f"footer at offset {offset:#x} has disk type {footer.disk_type} (offset "
                f"{offset + 60:#x}) but no copy at offset 0, which every dynamic or "
                "differencing disk starts with"
            )
        return footer

    def _check_fixed(self) -> None:
        footer, data = self.footer, self.file.size - FOOTER_SIZE
        if footer.current_size != data:
            raise _corrupt(
                f"fixed disk: the footer at offset {footer.offset:#x} gives current_size "
                f"{footer.current_size} (offset {footer.offset + 48:#x}), but the file holds "
                f"{data} bytes of data before it"
            )
        if self.virtual_size > data:
            raise _corrupt(
                f"fixed disk: the geometry at offset {footer.offset + 56:#x} "
                f"({footer.cylinders}/{footer.heads}/{footer.sectors}) gives "
                f"{self.virtual_size} bytes, more than the {data} bytes of data in the file"
            )

    def _open_dynamic(self) -> None:
        footer, size = self.footer, self.file.size
        offset = footer.data_offset
        if not FOOTER_SIZE <= offset <= size - DYNAMIC_HEADER_SIZE:
            raise _corrupt(
                f"footer data offset {offset:#x} (offset 0x10): the dynamic header must lie "
                f"after the footer copy and inside the {size}-byte file"
            )
        hdr = parse_dynamic_header(self.file.pread(DYNAMIC_HEADER_SIZE, offset), offset, size)
        if footer.disk_type == DIFFERENCING:
            raise VhdUnsupportedError(
                f"{self.path} is a differencing VHD (disk type 4) whose parent is "
                f"{hdr.parent_name!r}: differencing disks are not supported"
            )
        self.dynamic = hdr
        bs, entries = hdr.block_size, hdr.max_table_entries
        where = f"dynamic header at offset {offset:#x}"
        # qemu-img 7.2's vpc_open limits, in its order ("Too many blocks", "Page table too
        # small", "Max Table Entries too large"), then one of ours: the table kept in memory.
        if self.virtual_size // bs > 0xFFFFFFFF:
            raise _corrupt(f"{where}: {self.virtual_size} bytes is over 2^32 blocks of {bs}")
        if entries * bs < self.virtual_size:
            raise _corrupt(
                f"{where}: max_table_entries {entries} (offset {offset + 28:#x}) blocks of "
                f"{bs} bytes cover less than the virtual size {self.virtual_size}"
            )
        if entries > QEMU_MAX_TABLE_ENTRIES:
            raise _corrupt(
                f"{where}: max_table_entries {entries} (offset {offset + 28:#x}) is over "
                f"qemu's limit of {QEMU_MAX_TABLE_ENTRIES}"
            )
        if entries > MAX_TABLE_ENTRIES:
            raise VhdUnsupportedError(
                f"VHD {where}: a BAT of {entries} entries (max_table_entries, offset "
                f"{offset + 28:#x}) is more than this reader keeps ({MAX_TABLE_ENTRIES})"
            )
        table, length = hdr.table_offset, 4 * entries
        # qemu: the first free byte, past the BAT rounded to a sector, is inside the file.
        if table + -(-length // SECTOR) * SECTOR > size:
            raise _corrupt(
                f"BAT at {table:#x} (table_offset, offset {offset + 16:#x}) of {entries} "
                f"entries runs past the end of the {size}-byte file"
            )
        if table < FOOTER_SIZE or (
            table < offset + DYNAMIC_HEADER_SIZE and offset < table + length
        ):
            raise _corrupt(
                f"BAT at {table:#x} (table_offset, offset {offset + 16:#x}) overlaps the "
                f"footer copy or the dynamic header at {offset:#x}"
            )
        self._bat = self.file.pread(length, table)
        if len(self._bat) < length:  # checked above: the file shrank under us
            raise _corrupt(f"BAT at {table:#x}: truncated")
        self._entries = array("I", self._bat)
        self._full = bytearray(entries)
        if sys.byteorder == "little":
            self._entries.byteswap()
        self._check_blocks()

    def _check_blocks(self) -> None:
        """Every allocated block (bitmap and data) lies inside the file, clear of the metadata,
        and no two share a sector (qemu checks only the first; the others bound our work by
        the file's size and keep one host sector from appearing at two guest offsets)."""
        hdr = self.dynamic
        assert hdr is not None
        size, entries = self.file.size, self._entries
        stride = hdr.bitmap_size + hdr.block_size
        metadata = (
            (0, FOOTER_SIZE),
            (hdr.offset, hdr.offset + DYNAMIC_HEADER_SIZE),
            (hdr.table_offset, hdr.table_offset + 4 * len(entries)),
        )
        starts = array("I")
        for index in allocated(self._bat, len(entries), _UNALLOCATED_BYTES):
            start = entries[index] * SECTOR
            end = start + stride
            where = f"BAT entry {index} (offset {hdr.table_offset + 4 * index:#x})"
            if end > size:
                # qemu: "free_data_block_offset points after the end of file"
                raise _corrupt(
                    f"{where}: block at {start:#x} ({stride} bytes with its bitmap) runs past "
                    f"the end of the {size}-byte file"
                )
            for lo, hi in metadata:
                if start < hi and lo < end:
                    raise _corrupt(f"{where}: block at {start:#x} overlaps the metadata at {lo:#x}")
            starts.append(entries[index])
        if len(starts) * stride > size:  # then some overlap: no need to sort them to know
            raise _corrupt(
                f"BAT at {hdr.table_offset:#x}: {len(starts)} allocated blocks of {stride} "
                f"bytes (bitmap and data) cannot all fit in the {size}-byte file: some overlap"
            )
        clash = find_overlap(starts, stride // SECTOR)
        if clash is not None:
            first = entries.index(clash[0])
            second = next(i for i in range(len(entries)) if entries[i] == clash[1] and i != first)
            raise _corrupt(
                f"BAT entries {first} and {second} (offsets "
                f"{hdr.table_offset + 4 * first:#x}, {hdr.table_offset + 4 * second:#x}) point "
                f"to overlapping blocks at {clash[0] * SECTOR:#x} and {clash[1] * SECTOR:#x}"
            )

    # -- attributes -------------------------------------------------------------------------
    @property
    def disk_type(self) -> str:
        return "fixed" if self.footer.disk_type == FIXED else "dynamic"

    @property
    def block_size(self) -> Optional[int]:
        return self.dynamic.block_size if self.dynamic is not None else None

    def __repr__(self) -> str:
        return f"<VhdImage {str(self.path)!r} {self.disk_type} {self.virtual_size} bytes>"

    # -- mapping ----------------------------------------------------------------------------
    def extents(self) -> Iterator[Extent]:
        """Merged runs covering the virtual disk: a fixed disk is data but for the holes of
        its file; a dynamic disk's blocks are unallocated where the BAT says so, and where
        the block's bitmap has a clear bit."""
        self._check_open()
        if self.dynamic is None:
            return self._fixed_extents()
        return merged(self._dynamic_runs())

    def _fixed_extents(self) -> Iterator[Extent]:
        raw = RawImage(self.file)  # the data before the footer is a raw disk
        raw.virtual_size = self.virtual_size
        return raw.extents()

    def _dynamic_runs(self) -> Iterator[Extent]:
        hdr = self.dynamic
        assert hdr is not None
        bs, size = hdr.block_size, self.virtual_size
        count = -(-size // bs)
        index = 0
        while index < count:
            stop = run_end(self._bat, index, count, _UNALLOCATED_BYTES)
            if stop > index:
                yield Extent(index * bs, min(stop * bs, size) - index * bs, UNALLOCATED)
                index = stop
                continue
            guest = index * bs
            length = min(bs, size - guest)
            bits = self._bitmap(index, 0, length // SECTOR)
            if "0" not in bits:
                self._full[index] = 1
                yield Extent(guest, length, DATA)
            else:
                pos = 0
                for clear in _CLEAR.finditer(bits):
                    if clear.start() > pos:
                        yield Extent(guest + pos * SECTOR, (clear.start() - pos) * SECTOR, DATA)
                    yield Extent(
                        guest + clear.start() * SECTOR, (clear.end() - clear.start()) * SECTOR,
                        UNALLOCATED,
                    )  # fmt: skip
                    pos = clear.end()
                if pos * SECTOR < length:
                    yield Extent(guest + pos * SECTOR, length - pos * SECTOR, DATA)
            index += 1

    def _bitmap(self, index: int, first: int, count: int) -> str:
        """Bitmap bits of sectors ``first`` .. ``first + count`` of block ``index``."""
        lo, hi = first // 8, -(-(first + count) // 8)
        start = self._entries[index] * SECTOR
        raw = self.file.pread_padded(hi - lo, start + lo)
        return _bits(raw, first - 8 * lo, count)

    # -- reading ----------------------------------------------------------------------------
    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        self._check_open()
        view = memoryview(buf)
        if self.dynamic is None:
            self._pread(view[:length], offset)
            return
        hdr = self.dynamic
        bs, bitmap_size = hdr.block_size, hdr.bitmap_size
        pos, end = offset, offset + length
        while pos < end:
            index = pos // bs
            base = index * bs
            stop = min(end, base + bs)
            out = view[pos - offset : stop - offset]
            entry = self._entries[index]
            if entry == UNALLOCATED_ENTRY:
                out[:] = bytes(stop - pos)
            else:
                self._pread(out, entry * SECTOR + bitmap_size + pos - base)
                if not self._full[index]:
                    first = (pos - base) // SECTOR
                    bits = self._bitmap(index, first, -(-(stop - base) // SECTOR) - first)
                    if "0" in bits:
                        self._zero_clear(out, pos, base, first, bits)
            pos = stop

    @staticmethod
    def _zero_clear(out: memoryview, pos: int, base: int, first: int, bits: str) -> None:
        """Zero the sectors of ``out`` (guest bytes from ``pos``) whose bit is clear."""
        skew = pos - base - first * SECTOR  # bytes of the first sector before pos
        for clear in _CLEAR.finditer(bits):
            lo = max(0, clear.start() * SECTOR - skew)
            hi = min(len(out), clear.end() * SECTOR - skew)
            out[lo:hi] = bytes(hi - lo)

    def _pread(self, out: memoryview, host: int) -> None:
        got = self.file.pread_into(out, len(out), host)  # type: ignore[arg-type]
        if got < len(out):  # the file shrank under us: what is gone reads as zeros
            out[got:] = bytes(len(out) - got)

    def describe(self) -> Dict[str, Any]:
        """``qemu-img info --output=json -f vpc``'s fields (qemu has no format-specific data
        for VHD, and gives a cluster size for dynamic disks only). "format" says "vpc", as
        qemu does, so that scripts written against qemu-img work unchanged (``self.format``
        keeps the package's name, "vhd")."""
        result: Dict[str, Any] = {"virtual-size": self.virtual_size, "filename": str(self.path)}
        if self.dynamic is not None:
            result["cluster-size"] = self.dynamic.block_size
        result.update(
            {"format": "vpc", "actual-size": actual_size(self.file.fd), "dirty-flag": False}
        )
        return result


def open_image(source: SourceFile) -> VhdImage:
    """Open and validate a fixed or dynamic VHD.

    >>> with open_image(SourceFile.open("disk.vhd")) as img:  # doctest: +SKIP
    ...     img.disk_type, img.virtual_size
    ('dynamic', 10737418240)
    """
    return VhdImage(source)
