"""The VHDX header section: the file type identifier, the two headers and the region table.

[MS-VHDX] 2.2: the first megabyte holds the file type identifier (``vhdxfile`` at 0), two
4 KiB headers at 64 KiB and 128 KiB (the valid one with the higher sequence number is
current) and the region table at 192 KiB, with a copy at 256 KiB. Everything is little endian
and checksummed with CRC-32C over the structure with its checksum field zeroed. Nothing is
trusted before it is checked; every offset found here is range-checked against the file size.
"""

from __future__ import annotations

import struct
import uuid
from typing import Callable, List, NamedTuple, Optional, Tuple

from ..errors import VhdxCorruptError, VhdxUnsupportedError
from .crc32c import checksum_with_field_zeroed, stored_checksum

KiB = 1 << 10
MiB = 1 << 20

FILE_ID = b"vhdxfile"
HEADER_SECTION_SIZE = MiB
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB  # the checksum covers the whole 4 KiB, not just the 80 defined bytes
HEADER_SIGNATURE = b"head"
REGION_TABLE_OFFSETS = (192 * KiB, 256 * KiB)
REGION_TABLE_SIZE = 64 * KiB
REGION_SIGNATURE = b"regi"
#: [MS-VHDX] 2.2.3 and qemu's vhdx_open_region_tables: at most 2047 region table entries.
MAX_REGION_ENTRIES = 2047
REGION_REQUIRED = 1
#: The largest offset any structure may reach (qemu keeps file offsets in int64_t).
MAX_OFFSET = (1 << 63) - 1


def guid(text: str) -> bytes:
    """A GUID as VHDX stores it: Microsoft's mixed-endian layout (``uuid.bytes_le``)."""
    return uuid.UUID(text).bytes_le


BAT_GUID = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_GUID = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
ZERO_GUID = bytes(16)

_HEADER = struct.Struct("<4sIQ16s16s16sHHIQ")
_REGION_HEADER = struct.Struct("<4sIII")
_REGION_ENTRY = struct.Struct("<16sQII")

#: ``read(length, offset)``: up to ``length`` bytes of the file (short only at its end).
Reader = Callable[[int, int], bytes]


def guid_text(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=bytes(raw))).upper()


class Header(NamedTuple):
    """The current header's fields ([MS-VHDX] 2.2.2)."""

    which: int  # 0: the header at 64 KiB, 1: the one at 128 KiB
    file_offset: int
    sequence_number: int
    file_write_guid: bytes
    data_write_guid: bytes
    log_guid: bytes
    log_version: int
    version: int
    log_length: int
    log_offset: int

    @property
    def has_log(self) -> bool:
        """True when the log may hold entries to replay (a non-zero LogGuid)."""
        return self.log_guid != ZERO_GUID


class Region(NamedTuple):
    """One region table entry ([MS-VHDX] 2.2.3.2)."""

    entry: int
    guid: bytes
    file_offset: int
    length: int
    required: bool

    @property
    def end(self) -> int:
        return self.file_offset + self.length


class RegionTable(NamedTuple):
    table_offset: int
    bat: Region
    metadata: Region
    regions: Tuple[Region, ...]  # every entry, the known two included


def _corrupt(message: str) -> VhdxCorruptError:
    return VhdxCorruptError(f"vhdx: {message}")


def check_file_id(read: Reader) -> None:
    head = read(8, 0)
    if head != FILE_ID:
        raise _corrupt(
            f"file type identifier at offset 0 is {head!r}, expected {FILE_ID!r}: not a VHDX image"
        )


def _parse_one_header(raw: bytes, index: int) -> Tuple[Optional[Header], str]:
    """The header in ``raw`` if its signature and checksum hold, else why not."""
    offset = HEADER_OFFSETS[index]
    if len(raw) < HEADER_SIZE:
        return None, f"header {index + 1} at {offset:#x} is truncated ({len(raw)} bytes)"
    sig, _, seq, fwg, dwg, lg, log_version, version, log_length, log_offset = _HEADER.unpack_from(
        raw
    )
    if sig != HEADER_SIGNATURE:
        return None, f"header {index + 1} at {offset:#x} has signature {sig!r}, expected b'head'"
    expected = checksum_with_field_zeroed(raw[:HEADER_SIZE], 4)
    if stored_checksum(raw, 4) != expected:
        return None, (
            f"header {index + 1} at {offset:#x} has checksum {stored_checksum(raw, 4):#010x}, "
            f"computed {expected:#010x}"
        )
    return (
        Header(index, offset, seq, fwg, dwg, lg, log_version, version, log_length, log_offset),
        "",
    )


def parse_headers(read: Reader, file_size: int) -> Header:
    """The current header: of the two whose signature and CRC-32C hold, the one with the
    higher sequence number (qemu's vhdx_parse_header; two equal ones are fine only when
    identical, as Disk2VHD writes them)."""
    found: List[Header] = []
    why: List[str] = []
    for index, offset in enumerate(HEADER_OFFSETS):
        header, reason = _parse_one_header(read(HEADER_SIZE, offset), index)
        if header is None:
            why.append(reason)
        else:
            found.append(header)
    if not found:
        raise _corrupt("no valid header: " + "; ".join(why))
    if len(found) == 2 and found[0].sequence_number == found[1].sequence_number:
        if found[0][2:] != found[1][2:]:
            raise _corrupt(
                f"headers 1 and 2 both have sequence number {found[0].sequence_number} but "
                "differ: which one is current cannot be told"
            )
        current = found[0]
    else:
        current = max(found, key=lambda h: h.sequence_number)
    where = f"header {current.which + 1} at {current.file_offset:#x}"
    if current.version != 1:
        raise VhdxUnsupportedError(f"vhdx: {where}: version {current.version} (only 1 is known)")
    if current.log_version != 0:
        raise VhdxUnsupportedError(
            f"vhdx: {where}: log version {current.log_version} (only 0 is known)"
        )
    # qemu's vhdx_parse_log: the log starts past the header section on a 1 MiB boundary.
    if current.log_offset < HEADER_SECTION_SIZE or current.log_offset % MiB:
        raise _corrupt(
            f"{where}: LogOffset {current.log_offset:#x} must be a multiple of 1 MiB past the "
            "header section"
        )
    if current.log_length % MiB:
        raise _corrupt(f"{where}: LogLength {current.log_length} is not a multiple of 1 MiB")
    if current.log_length and current.log_offset + current.log_length > file_size:
        raise _corrupt(
            f"{where}: the log at {current.log_offset:#x} ({current.log_length} bytes) runs "
            f"past the end of the file ({file_size} bytes; truncated image?)"
        )
    return current


def _parse_region_table(raw: bytes, offset: int, file_size: int) -> RegionTable:
    if len(raw) < REGION_TABLE_SIZE:
        raise _corrupt(f"region table at {offset:#x} is truncated ({len(raw)} bytes)")
    sig, _, count, _ = _REGION_HEADER.unpack_from(raw)
    if sig != REGION_SIGNATURE:
        raise _corrupt(f"region table at {offset:#x} has signature {sig!r}, expected b'regi'")
    expected = checksum_with_field_zeroed(raw, 4)
    if stored_checksum(raw, 4) != expected:
        raise _corrupt(
            f"region table at {offset:#x} has checksum {stored_checksum(raw, 4):#010x}, "
            f"computed {expected:#010x}"
        )
    if count > MAX_REGION_ENTRIES:
        raise _corrupt(
            f"region table at {offset:#x}: EntryCount {count} exceeds {MAX_REGION_ENTRIES}"
        )
    regions: List[Region] = []
    bat: Optional[Region] = None
    metadata: Optional[Region] = None
    for index in range(count):
        pos = _REGION_HEADER.size + index * _REGION_ENTRY.size
        raw_guid, file_offset, length, flags = _REGION_ENTRY.unpack_from(raw, pos)
        region = Region(index, raw_guid, file_offset, length, bool(flags & REGION_REQUIRED))
        where = f"region table entry {index} (at {offset + pos:#x}, {guid_text(raw_guid)})"
        if raw_guid == BAT_GUID:
            if bat is not None:
                raise _corrupt(f"{where}: a second BAT region (entry {bat.entry} is one)")
            bat = region
        elif raw_guid == METADATA_GUID:
            if metadata is not None:
                raise _corrupt(f"{where}: a second metadata region (entry {metadata.entry} is one)")
            metadata = region
        elif region.required:
            raise VhdxUnsupportedError(
                f"vhdx: {where}: unknown region marked required: this reader cannot open the "
                "image (the specification forbids ignoring it)"
            )
        if file_offset < HEADER_SECTION_SIZE:
            raise _corrupt(
                f"{where}: FileOffset {file_offset:#x} lies inside the 1 MiB header section"
            )
        if file_offset + length > file_size:
            raise _corrupt(
                f"{where}: the region at {file_offset:#x} ({length} bytes) runs past the end "
                f"of the file ({file_size} bytes; truncated image?)"
            )
        for other in regions:
            if file_offset < other.end and other.file_offset < file_offset + length:
                raise _corrupt(
                    f"{where}: the region at {file_offset:#x}+{length} overlaps region table "
                    f"entry {other.entry} at {other.file_offset:#x}+{other.length}"
                )
        regions.append(region)
    if bat is None:
        raise _corrupt(f"region table at {offset:#x} has no BAT region")
    if metadata is None:
        raise _corrupt(f"region table at {offset:#x} has no metadata region")
    return RegionTable(offset, bat, metadata, tuple(regions))


def parse_region_table(read: Reader, file_size: int) -> RegionTable:
    """The region table at 192 KiB, or its copy at 256 KiB when the first is damaged (bad
    signature or checksum); errors in the entries of a sound table are not second-guessed."""
    first_error: Optional[VhdxCorruptError] = None
    for offset in REGION_TABLE_OFFSETS:
        raw = read(REGION_TABLE_SIZE, offset)
        try:
            return _parse_region_table(raw, offset, file_size)
        except VhdxCorruptError as exc:
            intact = len(raw) == REGION_TABLE_SIZE and raw[:4] == REGION_SIGNATURE
            if intact and checksum_with_field_zeroed(raw, 4) == stored_checksum(raw, 4):
                raise
            if first_error is None:
                first_error = exc
    assert first_error is not None
    raise first_error


def check_log_placement(header: Header, table: RegionTable) -> None:
    """The log must not overlap a region (qemu registers it before the region table)."""
    if not header.log_length:
        return
    start, end = header.log_offset, header.log_offset + header.log_length
    for region in table.regions:
        if start < region.end and region.file_offset < end:
            raise _corrupt(
                f"region table entry {region.entry} at {region.file_offset:#x}+{region.length} "
                f"overlaps the log at {start:#x}+{header.log_length}"
            )
