"""Parse and validate the VHD footer and the dynamic disk header (qemu's ``vpc_open`` checks).

All fields are big-endian. Every check that qemu-img 7.2 makes (block/vpc.c, ``vpc_open``) is
made here with the same outcome (it refuses, so do we); a few more are made where a field
would otherwise be trusted blindly. Each message names the field and its file offset.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..errors import VhdCorruptError, VhdUnsupportedError

FOOTER_SIZE = 512
DYNAMIC_HEADER_SIZE = 1024
FOOTER_COOKIE = b"conectix"
DYNAMIC_COOKIE = b"cxsparse"
SECTOR = 512

FIXED = 2
DYNAMIC = 3
DIFFERENCING = 4
TYPE_NAMES = {FIXED: "fixed", DYNAMIC: "dynamic", DIFFERENCING: "differencing"}

#: qemu's VHD_MAX_SECTORS: images over 2040 GiB are refused ("File too large").
MAX_SECTORS = 0xFF000000
#: qemu's VHD_MAX_GEOMETRY: a footer with this CHS geometry means "use current_size".
MAX_GEOMETRY = 65535 * 16 * 255
#: qemu refuses max_table_entries above INT_MAX / 4 (the BAT is read in one allocation).
QEMU_MAX_TABLE_ENTRIES = 0x7FFFFFFF // 4
#: Entries of the BAT this reader keeps in memory (16 MiB): a 2040 GiB disk (the format's
#: limit, as qemu enforces it) in blocks of 512 KiB or more. Smaller blocks on such a large
#: disk are refused as unsupported rather than held in memory.
MAX_TABLE_ENTRIES = 4 << 20
#: Creator apps whose images take their size from current_size rather than from the CHS
#: geometry (qemu 7.2's vpc_ignore_current_size: Hyper-V, qemu with force_size=on, Disk2vhd,
#: XenConverter, XenServer's "tap\0"). Every other creator, "vpc " and "qemu" included, means
#: cylinders * heads * sectors, unless the geometry is the maximum one.
CURRENT_SIZE_CREATORS = (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\x00")

_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB")
_DYNAMIC = struct.Struct(">8sQQIIII16sII")


class Footer(NamedTuple):
    offset: int  # where in the file this copy of the footer was read
    features: int
    version: int
    data_offset: int
    timestamp: int
    creator_app: bytes
    creator_version: int
    creator_os: bytes
    original_size: int
    current_size: int
    cylinders: int
    heads: int
    sectors: int
    disk_type: int
    checksum: int
    uuid: bytes
    saved_state: int

    @property
    def chs_sectors(self) -> int:
        return self.cylinders * self.heads * self.sectors

    @property
    def virtual_size(self) -> int:
        """The guest disk's size as qemu-img 7.2 computes it (vpc_open): the CHS geometry
        for "vpc ", "qemu" and unknown creators, ``current_size`` (rounded down to a sector)
        for the creators in CURRENT_SIZE_CREATORS or when the geometry is the maximum one."""
        sectors = self.chs_sectors
        if self.creator_app in CURRENT_SIZE_CREATORS or sectors == MAX_GEOMETRY:
            sectors = self.current_size // SECTOR
        return sectors * SECTOR


class DynamicHeader(NamedTuple):
    offset: int
    data_offset: int
    table_offset: int
    version: int
    max_table_entries: int
    block_size: int
    checksum: int
    parent_uuid: bytes
    parent_timestamp: int
    parent_name: str

    @property
    def bitmap_size(self) -> int:
        """Bytes of the sector bitmap before each block: one bit per sector, padded to a whole
        sector (the VHD spec; equal to qemu's for every block size of 4 KiB and more)."""
        return -(-(self.block_size // SECTOR) // (8 * SECTOR)) * SECTOR


def checksum(raw: bytes, field: int) -> int:
    """Ones' complement of the byte sum of ``raw`` with its 4-byte checksum at ``field``
    taken as zero."""
    return ~(sum(raw) - sum(raw[field : field + 4])) & 0xFFFFFFFF


def _corrupt(message: str) -> VhdCorruptError:
    return VhdCorruptError(f"VHD {message}")


def parse_footer(raw: bytes, offset: int) -> Footer:
    """Validate the 512-byte footer read at ``offset`` (0 for the copy that dynamic and
    differencing disks keep at the start, the last sector of the file for a fixed disk)."""
    if len(raw) < FOOTER_SIZE:
        raise _corrupt(f"footer at offset {offset:#x}: truncated ({len(raw)} of 512 bytes)")
    cookie, *fields = _FOOTER.unpack_from(raw)
    if cookie != FOOTER_COOKIE:
        raise _corrupt(f"footer at offset {offset:#x}: cookie {cookie!r}, expected b'conectix'")
    footer = Footer(offset, *fields)
    computed = checksum(raw[:FOOTER_SIZE], 64)
    if footer.checksum != computed:
        # qemu-img 7.2 refuses it too ("Incorrect header checksum").
        raise _corrupt(
            f"footer at offset {offset:#x}: checksum {footer.checksum:#010x} (offset "
            f"{offset + 64:#x}), computed {computed:#010x}"
        )
    if footer.version >> 16 != 1:
        raise VhdUnsupportedError(
            f"VHD footer at offset {offset:#x}: file format version {footer.version:#010x} "
            f"(offset {offset + 12:#x}), expected 0x00010000"
        )
    if footer.disk_type not in TYPE_NAMES:
        raise VhdUnsupportedError(
            f"VHD footer at offset {offset:#x}: disk type {footer.disk_type} (offset "
            f"{offset + 60:#x}) is not 2 (fixed), 3 (dynamic) or 4 (differencing)"
        )
    sectors = footer.virtual_size // SECTOR
    if sectors > MAX_SECTORS:
        # qemu-img: "File too large"
        raise VhdUnsupportedError(
            f"VHD footer at offset {offset:#x}: virtual size {footer.virtual_size} bytes "
            f"(current_size at {offset + 48:#x}, geometry at {offset + 56:#x}) is over the "
            f"format's 2040 GiB limit ({MAX_SECTORS} sectors)"
        )
    return footer


def parse_dynamic_header(raw: bytes, offset: int, file_size: int) -> DynamicHeader:
    """Validate the 1024-byte dynamic disk header read at ``offset`` (the footer's data
    offset); the BAT and blocks are checked by the image."""
    if len(raw) < DYNAMIC_HEADER_SIZE:
        raise _corrupt(
            f"dynamic header at offset {offset:#x}: truncated ({len(raw)} of 1024 bytes "
            f"in a {file_size}-byte file)"
        )
    (cookie, data_offset, table_offset, version, entries, block_size, cks, parent_uuid,
     parent_timestamp, _) = _DYNAMIC.unpack_from(raw)  # fmt: skip
    if cookie != DYNAMIC_COOKIE:
        raise _corrupt(
            f"dynamic header at offset {offset:#x}: cookie {cookie!r}, expected b'cxsparse'"
        )
    name = raw[64:576].decode("utf-16-be", errors="replace").split("\x00", 1)[0]
    header = DynamicHeader(
        offset, data_offset, table_offset, version, entries, block_size, cks, parent_uuid,
        parent_timestamp, name,
    )  # fmt: skip
    if block_size < SECTOR or block_size & (block_size - 1):
        raise _corrupt(
            f"dynamic header at offset {offset:#x}: block size {block_size} (offset "
            f"{offset + 32:#x}) is not a power of two of at least 512"
        )
    return header
