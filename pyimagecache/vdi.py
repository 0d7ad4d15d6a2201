"""VDI (VirtualBox) images: static and dynamic, validated on open, read with positional reads.

The header (little-endian) follows 64 bytes of pre-header text; the block map has one 32-bit
entry per 1 MiB guest block: the block's index in the data area, 0xffffffff for a block never
written, 0xfffffffe for a block discarded to zeros. Static (preallocated) and dynamic images
are read; undo and differencing images, and any image with a parent or link UUID, are
refused. Every check qemu-img 7.2 makes (block/vdi.c, ``vdi_open``) is made with the same
outcome, plus the ones that keep a hostile block map from being trusted.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Any, Dict, Iterator, NamedTuple

from ._blockmap import SourceImage, actual_size, allocated, find_overlap, merged, run_end
from .diskimage import DATA, UNALLOCATED, ZERO, Extent
from .errors import VdiCorruptError, VdiUnsupportedError
from .sourcefile import SourceFile

SIGNATURE = 0xBEDA107F
VERSION_1_1 = 0x00010001
HEADER_SIZE = 512
SECTOR = 512
BLOCK_SIZE = 1 << 20  # qemu's DEFAULT_CLUSTER_SIZE, the only block size it opens
DYNAMIC, STATIC, UNDO, DIFF = 1, 2, 3, 4
TYPE_NAMES = {DYNAMIC: "dynamic", STATIC: "static", UNDO: "undo", DIFF: "differencing"}
NOT_ALLOCATED = 0xFFFFFFFF
DISCARDED = 0xFFFFFFFE
#: qemu's VDI_BLOCKS_IN_IMAGE_MAX: the block map, rounded up to a sector, fits in INT_MAX.
QEMU_MAX_BLOCKS = (0x80000000 - SECTOR) // 4
#: qemu's VDI_DISK_SIZE_MAX.
MAX_DISK_SIZE = QEMU_MAX_BLOCKS * BLOCK_SIZE
#: Block map entries this reader keeps in memory (16 MiB): disks up to 4 TiB. Only the entries
#: that map the virtual disk are read, whatever blocks_in_image says.
MAX_BLOCKS = 4 << 20

_NOT_ALLOCATED_BYTES = b"\xff\xff\xff\xff"
# text, signature, version, header_size, image_type, image_flags, description
_HEAD = struct.Struct("<64sIIIII256s")
# offset_bmap .. blocks_allocated, then the four UUIDs
_GEOMETRY = struct.Struct("<IIIIIIIQIIII16s16s16s16s")


class Header(NamedTuple):
    text: bytes
    signature: int
    version: int
    header_size: int
    image_type: int
    image_flags: int
    description: bytes
    offset_bmap: int
    offset_data: int
    cylinders: int
    heads: int
    sectors: int
    sector_size: int
    unused: int
    disk_size: int
    block_size: int
    block_extra: int
    blocks_in_image: int
    blocks_allocated: int
    uuid_image: bytes
    uuid_last_snap: bytes
    uuid_link: bytes
    uuid_parent: bytes


def _corrupt(message: str) -> VdiCorruptError:
    return VdiCorruptError(f"VDI header: {message}")


def _unsupported(message: str) -> VdiUnsupportedError:
    return VdiUnsupportedError(f"VDI image: {message}")


def parse_header(raw: bytes, file_size: int) -> Header:
    """Validate the 512-byte header, in qemu's order where qemu checks the same field."""
    if len(raw) < HEADER_SIZE:
        raise _corrupt(f"truncated: {len(raw)} of {HEADER_SIZE} bytes")
    hdr = Header(*_HEAD.unpack_from(raw), *_GEOMETRY.unpack_from(raw, _HEAD.size))
    if hdr.signature != SIGNATURE:
        raise _corrupt(f"signature {hdr.signature:#010x} at 0x40, expected {SIGNATURE:#010x}")
    if hdr.disk_size > MAX_DISK_SIZE:
        raise _unsupported(
            f"disk size {hdr.disk_size} (offset 0x170) is over qemu's limit of {MAX_DISK_SIZE}"
        )
    if hdr.version != VERSION_1_1:
        raise _unsupported(
            f"version {hdr.version >> 16}.{hdr.version & 0xFFFF} (offset 0x44), expected 1.1"
        )
    if hdr.image_type not in (DYNAMIC, STATIC):
        what = TYPE_NAMES.get(hdr.image_type, "unknown")
        raise _unsupported(
            f"image type {hdr.image_type} ({what}, offset 0x4c): only 1 (dynamic) and "
            "2 (static) are supported"
        )
    for name, value, at in (
        ("block map", hdr.offset_bmap, 0x154),
        ("data", hdr.offset_data, 0x158),
    ):
        if value % SECTOR:
            raise _unsupported(f"{name} offset {value:#x} (offset {at:#x}) is not sector-aligned")
        if value < HEADER_SIZE:
            raise _corrupt(f"{name} offset {value:#x} (offset {at:#x}) lies inside the header")
    if hdr.sector_size != SECTOR:
        raise _unsupported(f"sector size {hdr.sector_size} (offset 0x168) is not 512")
    if hdr.block_size != BLOCK_SIZE:
        raise _unsupported(
            f"block size {hdr.block_size} (offset 0x178) is not 1 MiB, the only size "
            "VirtualBox writes and qemu-img opens"
        )
    if hdr.block_extra:
        # qemu ignores it and would read each block from the wrong place.
        raise _unsupported(f"block extra {hdr.block_extra} (offset 0x17c) is not 0")
    if -(-hdr.disk_size // SECTOR) * SECTOR > hdr.blocks_in_image * hdr.block_size:
        raise _corrupt(
            f"disk size {hdr.disk_size} (offset 0x170) is larger than blocks_in_image "
            f"{hdr.blocks_in_image} (offset 0x180) blocks of {hdr.block_size} bytes"
        )
    if hdr.uuid_link != bytes(16):
        raise _unsupported("it has a link UUID (offset 0x1a8): differencing images are refused")
    if hdr.uuid_parent != bytes(16):
        raise _unsupported("it has a parent UUID (offset 0x1b8): differencing images are refused")
    if hdr.blocks_in_image > QEMU_MAX_BLOCKS:
        raise _unsupported(
            f"blocks_in_image {hdr.blocks_in_image} (offset 0x180) is over qemu's limit of "
            f"{QEMU_MAX_BLOCKS}"
        )
    return hdr


class VdiImage(SourceImage):
    """An open static or dynamic VDI. Use :func:`open_image`."""

    format = "vdi"
    granularity = SECTOR
    has_backing = False

    def __init__(self, source: SourceFile) -> None:
        super().__init__(source)
        try:
            self.header = parse_header(self.file.pread(HEADER_SIZE, 0), self.file.size)
            # qemu rounds an odd disk size (VBoxManage convertfromraw makes them) up to a sector.
            self.virtual_size = -(-self.header.disk_size // SECTOR) * SECTOR
            self._read_bmap()
        except BaseException:
            self.close()
            raise

    def _read_bmap(self) -> None:
        hdr, size = self.header, self.file.size
        count = -(-self.virtual_size // BLOCK_SIZE)
        if count > MAX_BLOCKS:
            raise _unsupported(
                f"{count} blocks map the virtual disk, more than this reader keeps ({MAX_BLOCKS})"
            )
        start, end = hdr.offset_bmap, hdr.offset_bmap + 4 * count
        if end > size:
            raise VdiCorruptError(
                f"VDI block map at {start:#x} ({count} entries) runs past the end of the "
                f"{size}-byte file"
            )
        if start < hdr.offset_data + hdr.blocks_allocated * BLOCK_SIZE and hdr.offset_data < end:
            raise VdiCorruptError(
                f"VDI block map at {start:#x} ({count} entries) overlaps the data area at "
                f"{hdr.offset_data:#x}"
            )
        self._bmap = self.file.pread(4 * count, start)
        if len(self._bmap) < 4 * count:  # checked above: the file shrank under us
            raise VdiCorruptError(f"VDI block map at {start:#x}: truncated")
        self._entries = array("I", self._bmap)
        if sys.byteorder == "big":
            self._entries.byteswap()
        self._check_entries()

    def _check_entries(self) -> None:
        """Every allocated entry is a block of the data area below blocks_allocated, inside
        the file, and used once (qemu-img check's rules; qemu's reads trust the entries)."""
        hdr, size, entries = self.header, self.file.size, self._entries
        indices = array("I")
        count = len(entries)
        for index in allocated(self._bmap, count, _NOT_ALLOCATED_BYTES):
            entry = entries[index]
            if entry != DISCARDED:
                where = f"VDI block map entry {index} (offset {hdr.offset_bmap + 4 * index:#x})"
                if entry >= hdr.blocks_allocated:
                    raise VdiCorruptError(
                        f"{where}: block {entry} is not below blocks_allocated "
                        f"{hdr.blocks_allocated} (offset 0x184)"
                    )
                if hdr.offset_data + (entry + 1) * BLOCK_SIZE > size:
                    raise VdiCorruptError(
                        f"{where}: block {entry} at "
                        f"{hdr.offset_data + entry * BLOCK_SIZE:#x} runs past the end of the "
                        f"{size}-byte file"
                    )
                indices.append(entry)
        clash = find_overlap(indices, 1)
        if clash is not None:
            first, second = (i for i in range(count) if entries[i] == clash[0])
            raise VdiCorruptError(
                f"VDI block map entries {first} and {second} (offsets "
                f"{hdr.offset_bmap + 4 * first:#x}, {hdr.offset_bmap + 4 * second:#x}) both "
                f"point to block {clash[0]}"
            )

    # -- attributes -------------------------------------------------------------------------
    @property
    def image_type(self) -> str:
        return TYPE_NAMES[self.header.image_type]

    def __repr__(self) -> str:
        return f"<VdiImage {str(self.path)!r} {self.image_type} {self.virtual_size} bytes>"

    # -- mapping and reading ----------------------------------------------------------------
    def extents(self) -> Iterator[Extent]:
        """Merged runs: allocated blocks are data, discarded ones zero, the rest unallocated."""
        self._check_open()
        return merged(self._runs())

    def _runs(self) -> Iterator[Extent]:
        size, entries = self.virtual_size, self._entries
        index, count = 0, len(entries)
        while index < count:
            stop = run_end(self._bmap, index, count, _NOT_ALLOCATED_BYTES)
            if stop > index:
                kind = UNALLOCATED
            else:
                stop = index + 1
                kind = ZERO if entries[index] == DISCARDED else DATA
            yield Extent(
                index * BLOCK_SIZE, min(stop * BLOCK_SIZE, size) - index * BLOCK_SIZE, kind
            )
            index = stop

    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        """Fill ``buf[:length]``: one pread per run of blocks that are contiguous in the file."""
        self._check_open()
        view = memoryview(buf)
        entries, data = self._entries, self.header.offset_data
        pos, end = offset, offset + length
        while pos < end:
            index = pos // BLOCK_SIZE
            entry = entries[index]
            stop = min(end, (index + 1) * BLOCK_SIZE)
            out_lo = pos - offset
            if entry >= DISCARDED:
                view[out_lo : stop - offset] = bytes(stop - pos)
                pos = stop
                continue
            # Extend over the following blocks stored right after this one.
            while stop < end and entries[stop // BLOCK_SIZE] == entry + stop // BLOCK_SIZE - index:
                stop = min(end, stop + BLOCK_SIZE)
            out = view[out_lo : stop - offset]
            host = data + entry * BLOCK_SIZE + pos - index * BLOCK_SIZE
            got = self.file.pread_into(out, stop - pos, host)  # type: ignore[arg-type]
            if got < stop - pos:  # the file shrank under us: what is gone reads as zeros
                out[got:] = bytes(stop - pos - got)
            pos = stop

    def describe(self) -> Dict[str, Any]:
        """``qemu-img info --output=json``'s fields (qemu has no format-specific data for VDI)."""
        return {
            "virtual-size": self.virtual_size,
            "filename": str(self.path),
            "cluster-size": self.header.block_size,
            "format": "vdi",
            "actual-size": actual_size(self.file.fd),
            "dirty-flag": False,
        }


def open_image(source: SourceFile) -> VdiImage:
    """Open and validate a static or dynamic VDI.

    >>> with open_image(SourceFile.open("disk.vdi")) as img:  # doctest: +SKIP
    ...     img.image_type, img.virtual_size
    ('dynamic', 10737418240)
    """
    return VdiImage(source)
