"""The VHDX metadata region: its table and the system metadata items ([MS-VHDX] 2.6).

The table (signature ``metadata``) sits in the region's first 64 KiB; items follow it. The
five items every image has (file parameters, virtual disk size, page 83 data, logical and
physical sector size) are parsed and validated; a differencing disk's parent locator is read
only to name the parent when refusing the image. An unknown item marked required is refused.
"""

from __future__ import annotations

import struct
from typing import Dict, List, NamedTuple, Optional

from ..errors import VhdxCorruptError, VhdxUnsupportedError
from .header import KiB, MiB, Reader, Region, guid, guid_text

SIGNATURE = b"metadata"
TABLE_SIZE = 64 * KiB
#: qemu's VHDX_METADATA_MAX_ENTRIES (and [MS-VHDX] 2.6.1.1): at most 2047 entries.
MAX_ENTRIES = 2047
#: [MS-VHDX] 2.6.1.2: an item is at most 1 MiB long.
MAX_ITEM_LENGTH = MiB
FLAG_IS_USER = 1
FLAG_IS_VIRTUAL_DISK = 2
FLAG_IS_REQUIRED = 4

FILE_PARAMETERS = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE_83_DATA = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

#: item -> (name, bytes it must hold at least)
KNOWN_ITEMS = {
    FILE_PARAMETERS: ("File Parameters", 8),
    VIRTUAL_DISK_SIZE: ("Virtual Disk Size", 8),
    PAGE_83_DATA: ("Page 83 Data", 16),
    LOGICAL_SECTOR_SIZE: ("Logical Sector Size", 4),
    PHYSICAL_SECTOR_SIZE: ("Physical Sector Size", 4),
    PARENT_LOCATOR: ("Parent Locator", 20),
}
REQUIRED_ITEMS = (
    FILE_PARAMETERS,
    VIRTUAL_DISK_SIZE,
    PAGE_83_DATA,
    LOGICAL_SECTOR_SIZE,
    PHYSICAL_SECTOR_SIZE,
)

MIN_BLOCK_SIZE = MiB
MAX_BLOCK_SIZE = 256 * MiB
SECTOR_SIZES = (512, 4096)
#: [MS-VHDX] 2.6.2.2 and qemu's VHDX_MAX_IMAGE_SIZE: a virtual disk is at most 64 TiB.
MAX_VIRTUAL_SIZE = 64 << 40
#: Parent locator keys that name a path, in the order they are worth showing.
PATH_KEYS = ("relative_path", "absolute_win32_path", "volume_path")

_TABLE_HEADER = struct.Struct("<8sHH20x")
_ENTRY = struct.Struct("<16sIII4x")
_LOCATOR_HEADER = struct.Struct("<16sHH")
_LOCATOR_ENTRY = struct.Struct("<IIHH")


class Metadata(NamedTuple):
    block_size: int
    leave_blocks_allocated: bool
    has_parent: bool
    virtual_size: int
    page83: bytes
    logical_sector_size: int
    physical_sector_size: int
    parent_locator: Optional[Dict[str, str]]


def _corrupt(message: str) -> VhdxCorruptError:
    return VhdxCorruptError(f"vhdx metadata: {message}")


class _Item(NamedTuple):
    entry: int
    offset: int  # relative to the region
    length: int
    flags: int


def parse_metadata(read: Reader, region: Region) -> Metadata:
    """Read and validate the metadata table and items of ``region`` (already checked to lie
    inside the file)."""
    base = region.file_offset
    if region.length < TABLE_SIZE:
        raise _corrupt(
            f"the metadata region at {base:#x} is {region.length} bytes, smaller than its "
            f"{TABLE_SIZE}-byte table"
        )
    table = read(TABLE_SIZE, base)
    if len(table) < TABLE_SIZE:
        raise _corrupt(f"the table at {base:#x} is truncated")
    sig, _, count = _TABLE_HEADER.unpack_from(table)
    if sig != SIGNATURE:
        raise _corrupt(f"the table at {base:#x} has signature {sig!r}, expected {SIGNATURE!r}")
    if count > MAX_ENTRIES:
        raise _corrupt(f"the table at {base:#x}: EntryCount {count} exceeds {MAX_ENTRIES}")
    items: Dict[bytes, _Item] = {}
    for index in range(count):
        pos = _TABLE_HEADER.size + index * _ENTRY.size
        item_id, offset, length, flags = _ENTRY.unpack_from(table, pos)
        known = KNOWN_ITEMS.get(item_id)
        name = known[0] if known else guid_text(item_id)
        where = f"entry {index} ({name}, at {base + pos:#x})"
        if length > MAX_ITEM_LENGTH:
            raise _corrupt(f"{where}: Length {length} exceeds {MAX_ITEM_LENGTH}")
        if length and (offset < TABLE_SIZE or offset + length > region.length):
            raise _corrupt(
                f"{where}: item at region offset {offset:#x} ({length} bytes) lies outside "
                f"the item area {TABLE_SIZE:#x}..{region.length:#x}"
            )
        if not length and offset:
            raise _corrupt(f"{where}: Offset {offset:#x} for an empty item (must be 0)")
        if known is None:
            if flags & FLAG_IS_REQUIRED:
                raise VhdxUnsupportedError(
                    f"vhdx metadata: {where}: unknown item marked required: this reader "
                    "cannot open the image"
                )
            continue
        if item_id in items:
            raise _corrupt(f"{where}: a second {name} item (entry {items[item_id].entry})")
        if length < known[1]:
            raise _corrupt(f"{where}: Length {length}, the {name} item needs {known[1]} bytes")
        items[item_id] = _Item(index, offset, length, flags)
    missing: List[str] = [KNOWN_ITEMS[i][0] for i in REQUIRED_ITEMS if i not in items]
    if missing:
        raise _corrupt(f"the table at {base:#x} lacks required items: {', '.join(missing)}")

    def item(item_id: bytes, size: int) -> bytes:
        entry = items[item_id]
        data = read(size, base + entry.offset)
        if len(data) < size:
            raise _corrupt(f"the {KNOWN_ITEMS[item_id][0]} item is truncated")
        return data

    block_size, params = struct.unpack("<II", item(FILE_PARAMETERS, 8))
    (virtual_size,) = struct.unpack("<Q", item(VIRTUAL_DISK_SIZE, 8))
    page83 = item(PAGE_83_DATA, 16)
    (logical,) = struct.unpack("<I", item(LOGICAL_SECTOR_SIZE, 4))
    (physical,) = struct.unpack("<I", item(PHYSICAL_SECTOR_SIZE, 4))

    if not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE or block_size & (block_size - 1):
        raise _corrupt(
            f"File Parameters: BlockSize {block_size} is not a power of two in 1 MiB..256 MiB"
        )
    if logical not in SECTOR_SIZES:
        raise _corrupt(f"Logical Sector Size {logical}: must be 512 or 4096")
    if physical not in SECTOR_SIZES:
        raise _corrupt(f"Physical Sector Size {physical}: must be 512 or 4096")
    if virtual_size % logical:
        raise _corrupt(
            f"Virtual Disk Size {virtual_size} is not a multiple of the logical sector size "
            f"{logical}"
        )
    if virtual_size > MAX_VIRTUAL_SIZE:
        raise _corrupt(f"Virtual Disk Size {virtual_size} exceeds 64 TiB")
    has_parent = bool(params & 2)
    locator: Optional[Dict[str, str]] = None
    if PARENT_LOCATOR in items:
        entry = items[PARENT_LOCATOR]
        locator = _parse_locator(read(entry.length, base + entry.offset), base + entry.offset)
    if has_parent and PARENT_LOCATOR not in items:
        raise _corrupt("File Parameters: HasParent is set but there is no Parent Locator item")
    return Metadata(
        block_size=block_size,
        leave_blocks_allocated=bool(params & 1),
        has_parent=has_parent,
        virtual_size=virtual_size,
        page83=page83,
        logical_sector_size=logical,
        physical_sector_size=physical,
        parent_locator=locator,
    )


def _parse_locator(data: bytes, offset: int) -> Dict[str, str]:
    """Key/value pairs of a parent locator ([MS-VHDX] 2.6.2.6): UTF-16LE strings at offsets
    relative to the item."""
    if len(data) < _LOCATOR_HEADER.size:
        raise _corrupt(f"Parent Locator at {offset:#x} is truncated")
    _, _, count = _LOCATOR_HEADER.unpack_from(data)
    if _LOCATOR_HEADER.size + count * _LOCATOR_ENTRY.size > len(data):
        raise _corrupt(
            f"Parent Locator at {offset:#x}: KeyValueCount {count} entries do not fit in its "
            f"{len(data)} bytes"
        )
    pairs: Dict[str, str] = {}
    for index in range(count):
        pos = _LOCATOR_HEADER.size + index * _LOCATOR_ENTRY.size
        key_off, value_off, key_len, value_len = _LOCATOR_ENTRY.unpack_from(data, pos)
        strings = []
        for what, start, size in (("key", key_off, key_len), ("value", value_off, value_len)):
            if start + size > len(data):
                raise _corrupt(
                    f"Parent Locator at {offset:#x}, entry {index}: the {what} at {start} "
                    f"({size} bytes) runs past the item"
                )
            strings.append(data[start : start + size].decode("utf-16-le", "replace"))
        pairs.setdefault(strings[0], strings[1])
    return pairs


def parent_path(locator: Optional[Dict[str, str]]) -> Optional[str]:
    """The parent's path as the locator gives it, if it gives one."""
    for key in PATH_KEYS:
        if locator and locator.get(key):
            return locator[key]
    return None
