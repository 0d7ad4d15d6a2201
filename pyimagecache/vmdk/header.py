"""Parse and validate the header of a hosted sparse extent (magic ``KDMV``), and the footer that
a stream-optimized extent keeps in its last sectors (qemu's ``vmdk_open_vmdk4`` checks).

Every field is checked before it is used: sizes against the limits qemu enforces (cited where
they are), offsets against the file size, so that the grain directory and tables can be read
without checking again. The other extent magics (``COWD``: ESX vmfsSparse, and seSparse) are
recognised so that they can be refused by name.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..errors import VmdkCorruptError, VmdkUnsupportedError

SECTOR = 512
MAGIC = b"KDMV"
COWD_MAGIC = b"COWD"  # ESX vmfsSparse (VMDK3) extents
SESPARSE_MAGIC = struct.pack("<Q", 0xCAFEBABE)  # ESXi seSparse const header

FLAG_NL_DETECT = 1 << 0  # the check bytes are valid: a text-mode transfer would change them
FLAG_RGD = 1 << 1  # a redundant grain directory exists (ignored: we read the primary one)
FLAG_ZERO_GRAIN = 1 << 2  # grain table entry 1 means "a grain of zeros"
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
COMPRESSION_NONE = 0
COMPRESSION_DEFLATE = 1
#: gdOffset of a stream-optimized extent whose grain directory is found through the footer.
GD_AT_END = 0xFFFF_FFFF_FFFF_FFFF
CHECK_BYTES = b"\n \r\n"

#: qemu refuses more grain table entries per table ("L2 table size too big").
MAX_GTES_PER_GT = 512
#: qemu refuses larger grains in vmdk_add_extent ("0x200000 * 512Bytes = 1GB for one cluster
#: is unrealistic").
MAX_GRAIN_SECTORS = 0x200000
#: Ours: a compressed grain is decoded whole in memory, per worker thread; VMware and qemu write
#: 64 KiB grains. Larger ones would break the converter's 64 MiB memory bound.
MAX_COMPRESSED_GRAIN = 2 << 20
#: qemu refuses a larger grain directory in vmdk_add_extent ("L1 size too big", 32 Mi entries).
QEMU_MAX_GD_ENTRIES = 32 << 20
#: Ours, to keep the directory in memory within 16 MiB: with 64 KiB grains and 512-entry tables
#: that still covers 128 PiB; only hostile grain and table sizes reach it.
MAX_GD_ENTRIES = 4 << 20
#: Descriptor text read at most, embedded or in a file: qemu's vmdk_read_desc reads at most
#: (1 << 20) - 1 bytes "to avoid unbounded allocation".
MAX_DESCRIPTOR_BYTES = (1 << 20) - 1
MAX_CAPACITY_SECTORS = ((1 << 63) - 1) // SECTOR

# magic, version, flags, capacity, grainSize, descriptorOffset, descriptorSize, numGTEsPerGT,
# rgdOffset, gdOffset, overHead, uncleanShutdown, the four check bytes, compressAlgorithm
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")
HEADER_SIZE = _HEADER.size  # 79 bytes, in a 512-byte sector
#: A stream marker: (lba or value, size, type); metadata markers have size 0 and a type.
MARKER = struct.Struct("<QII")
MARKER_EOS = 0
MARKER_GT = 1
MARKER_GD = 2
MARKER_FOOTER = 3
#: The footer marker, the footer (a copy of the header) and the end-of-stream marker: the last
#: three sectors of a stream-optimized extent whose gdOffset is GD_AT_END.
FOOTER_BYTES = 3 * SECTOR


class SparseHeader(NamedTuple):
    """The validated fields of a sparse extent header (sectors, as stored, unless named
    ``_bytes``). ``offset`` is where in the file it was read: 0, or the footer's offset."""

    version: int
    flags: int
    capacity: int
    grain_sectors: int
    desc_offset: int
    desc_size: int
    gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    compress_algorithm: int
    offset: int

    @property
    def compressed(self) -> bool:
        return self.compress_algorithm == COMPRESSION_DEFLATE

    @property
    def zero_grain(self) -> bool:
        return bool(self.flags & FLAG_ZERO_GRAIN)

    @property
    def grain_bytes(self) -> int:
        return self.grain_sectors * SECTOR

    @property
    def virtual_size(self) -> int:
        return self.capacity * SECTOR

    @property
    def gd_entries(self) -> int:
        """Grain directory entries: one per grain table, enough tables for the capacity."""
        return -(-self.capacity // (self.gtes_per_gt * self.grain_sectors))

    @property
    def gd_at_end(self) -> bool:
        return self.gd_offset == GD_AT_END


def parse_header(data: bytes, file_size: int, offset: int = 0) -> SparseHeader:
    """Validate the sparse extent header in ``data`` (read at file ``offset``).

    >>> parse_header(f.pread(512, 0), f.size)  # doctest: +SKIP
    SparseHeader(version=1, flags=3, capacity=20480, grain_sectors=128, ...)
    """
    what = "VMDK header" if offset == 0 else f"VMDK footer (at file offset {offset:#x})"

    def corrupt(message: str) -> VmdkCorruptError:
        return VmdkCorruptError(f"{what}: {message}")

    if len(data) < 4 or data[:4] != MAGIC:
        raise corrupt(f"bad magic {data[:4]!r}, expected {MAGIC!r}")
    if len(data) < HEADER_SIZE:
        raise corrupt(f"truncated: {len(data)} bytes, the header has {HEADER_SIZE}")
    (_, version, flags, capacity, grain, desc_offset, desc_size, gtes, rgd_offset, gd_offset,
     overhead, _unclean, check, algorithm) = _HEADER.unpack_from(data)  # fmt: skip

    if version == 0:
        raise corrupt("version 0: hosted sparse extents have versions 1 to 3")
    if version > 3:
        raise VmdkUnsupportedError(f"{what}: version {version} is not supported (1 to 3)")
    if flags & FLAG_NL_DETECT and check != CHECK_BYTES:
        raise corrupt(
            f"newline check bytes {check!r} (file offset {offset + 73:#x}), expected "
            f"{CHECK_BYTES!r}: the file went through a text-mode transfer"
        )
    if algorithm not in (COMPRESSION_NONE, COMPRESSION_DEFLATE):
        raise VmdkUnsupportedError(f"{what}: unknown compressAlgorithm {algorithm} (0 or 1)")
    if algorithm == COMPRESSION_DEFLATE and not flags & FLAG_MARKERS:
        raise VmdkUnsupportedError(
            f"{what}: compressed grains without grain markers (flags {flags:#x} lack bit 17)"
        )
    if not 1 <= grain <= MAX_GRAIN_SECTORS:
        raise corrupt(f"grainSize {grain} sectors outside 1..{MAX_GRAIN_SECTORS}")
    if algorithm == COMPRESSION_DEFLATE and grain * SECTOR > MAX_COMPRESSED_GRAIN:
        raise VmdkUnsupportedError(
            f"{what}: compressed grains of {grain * SECTOR} bytes (grainSize {grain}): at most "
            f"{MAX_COMPRESSED_GRAIN} bytes are supported"
        )
    if not 1 <= gtes <= MAX_GTES_PER_GT:
        raise corrupt(f"numGTEsPerGT {gtes} outside 1..{MAX_GTES_PER_GT}")
    if capacity > MAX_CAPACITY_SECTORS:
        raise corrupt(f"capacity {capacity} sectors is larger than 2^63 bytes")
    header = SparseHeader(
        version, flags, capacity, grain, desc_offset, desc_size, gtes, rgd_offset, gd_offset,
        overhead, algorithm, offset,
    )  # fmt: skip
    entries = header.gd_entries
    if entries > QEMU_MAX_GD_ENTRIES:
        raise corrupt(
            f"capacity {capacity} sectors needs {entries} grain directory entries, more than "
            f"qemu's limit of {QEMU_MAX_GD_ENTRIES}"
        )
    if entries > MAX_GD_ENTRIES:
        raise VmdkUnsupportedError(
            f"{what}: capacity {capacity} sectors with {grain}-sector grains and {gtes}-entry "
            f"grain tables needs {entries} grain directory entries (at most {MAX_GD_ENTRIES})"
        )
    if overhead * SECTOR > file_size:
        raise corrupt(
            f"overHead {overhead} sectors: the file is truncated, expecting at least "
            f"{overhead * SECTOR} bytes, it has {file_size}"
        )
    if desc_offset:
        if desc_size * SECTOR > MAX_DESCRIPTOR_BYTES + 1:
            raise corrupt(
                f"descriptorSize {desc_size} sectors: at most {(MAX_DESCRIPTOR_BYTES + 1) // 512}"
            )
        if (desc_offset + desc_size) * SECTOR > file_size:
            raise corrupt(
                f"descriptorOffset {desc_offset} + descriptorSize {desc_size} sectors run past "
                f"the end of the file ({file_size} bytes)"
            )
    if not header.gd_at_end and entries:
        if gd_offset == 0:
            raise corrupt("gdOffset 0: the grain directory would overlap the header")
        if gd_offset * SECTOR + 4 * entries > file_size:
            raise corrupt(
                f"gdOffset {gd_offset} sectors: the grain directory ({4 * entries} bytes) runs "
                f"past the end of the file ({file_size} bytes; truncated image?)"
            )
    return header


def parse_footer(tail: bytes, offset: int, file_size: int) -> SparseHeader:
    """The footer of a stream-optimized extent: ``tail`` is the file's last FOOTER_BYTES
    bytes, read at ``offset`` (footer marker, footer, end-of-stream marker)."""
    if len(tail) < FOOTER_BYTES or offset < 0:
        raise VmdkCorruptError(
            f"VMDK header: gdOffset is GD_AT_END but the file ({file_size} bytes) is too short "
            f"for a footer"
        )
    _, size, kind = MARKER.unpack_from(tail, 0)
    if size != 0 or kind != MARKER_FOOTER:
        raise VmdkCorruptError(
            f"VMDK footer marker at file offset {offset:#x}: size {size}, type {kind}; expected "
            f"a footer marker (size 0, type {MARKER_FOOTER})"
        )
    value, size, kind = MARKER.unpack_from(tail, 2 * SECTOR)
    if value != 0 or size != 0 or kind != MARKER_EOS:
        raise VmdkCorruptError(
            f"VMDK end-of-stream marker at file offset {offset + 2 * SECTOR:#x}: value {value}, "
            f"size {size}, type {kind}; expected all zero"
        )
    footer = parse_header(tail[SECTOR : 2 * SECTOR], file_size, offset + SECTOR)
    if footer.gd_at_end:
        raise VmdkCorruptError(
            f"VMDK footer (at file offset {offset + SECTOR:#x}): gdOffset is GD_AT_END too"
        )
    return footer
