"""The text descriptor of a VMDK (a file starting ``# Disk DescriptorFile``, or the one embedded
in a sparse extent): version, CID, parentCID, createType, the extent lines and ``ddb.*`` keys.

Parsing is line by line and bounded: the text is capped as qemu caps it, lines, file names and
the number of extents are capped too. Extent file names are resolved relative to the
descriptor's directory and must stay inside it (no absolute paths, no ``..``, no symlink
leading out).

Extent lines follow VMware's meaning where qemu 7.2 differs: qemu skips ``RDONLY`` and ``ZERO``
lines altogether (so the extents after them move and the disk shrinks); here an ``RDONLY``
extent reads like ``RW`` and a ``ZERO`` extent reads as zeros. ``NOACCESS`` is refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

from ..errors import VmdkCorruptError, VmdkUnsupportedError
from .header import MAX_CAPACITY_SECTORS, MAX_DESCRIPTOR_BYTES

SIGNATURE = "# Disk DescriptorFile"
#: Ours: a line longer than this is not a descriptor line (the whole text is capped anyway).
MAX_LINE = 4096
#: qemu's extent-line parser keeps at most 511 bytes of a file name (``%511[^\n\r\"]``).
MAX_NAME = 511
#: Ours: each extent holds an open file. twoGbMaxExtentSparse needs 1024 for a 2 TiB disk.
MAX_EXTENTS = 1024
NO_PARENT = 0xFFFFFFFF

#: createType values read, and the extent types they may hold.
SUPPORTED_TYPES = (
    "monolithicSparse",
    "streamOptimized",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
    "vmfs",
)
REFUSED_TYPES = {
    "vmfsSparse": "ESX vmfsSparse (COWD) delta extents",
    "seSparse": "ESXi seSparse extents",
}
REFUSED_EXTENTS = {
    "VMFSSPARSE": "ESX vmfsSparse (COWD) extents",
    "SESPARSE": "ESXi seSparse extents",
    "VMFSRDM": "raw device mappings",
    "VMFSRAW": "raw device mappings",
}

_EXTENT = re.compile(
    r"(?P<access>RW|RDONLY|NOACCESS)\s+(?P<sectors>[0-9]+)\s+(?P<type>[A-Za-z]+)"
    r'(?:\s+"(?P<name>[^"]*)"(?:\s+(?P<offset>[0-9]+))?)?\s*'
)
_KEY = re.compile(r"(?P<key>[A-Za-z][\w.-]*)\s*=\s*(?P<value>.*)")


class ExtentLine(NamedTuple):
    """One extent line: ``RW 4194304 SPARSE "disk-s001.vmdk"`` (sectors, offset in sectors)."""

    line: int
    access: str
    sectors: int
    type: str
    name: Optional[str]
    offset: int


class Descriptor(NamedTuple):
    version: Optional[int]
    cid: Optional[int]
    parent_cid: Optional[int]
    create_type: Optional[str]
    parent_hint: Optional[str]
    extents: List[ExtentLine]
    keys: Dict[str, str]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _hex32(key: str, value: str, where: str) -> int:
    try:
        number = int(value, 16)
    except ValueError:
        number = -1
    if not 0 <= number <= 0xFFFFFFFF:
        raise VmdkCorruptError(f"{where}: {key}={value[:40]!r} is not a 32-bit hex number")
    return number


def parse_descriptor(
    raw: bytes, where: str = "VMDK descriptor", *, with_extents: bool = True
) -> Descriptor:
    """Parse descriptor text (bytes up to the first NUL, which pads an embedded one). The
    extent lines of a sparse extent's embedded descriptor are skipped (``with_extents=False``):
    like qemu, the reader uses the extent itself.

    >>> parse_descriptor(open("disk.vmdk", "rb").read()).create_type  # doctest: +SKIP
    'monolithicFlat'
    """
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        raise VmdkCorruptError(
            f"{where}: {len(raw)} bytes, more than qemu's limit of {MAX_DESCRIPTOR_BYTES}"
        )
    text = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    keys: Dict[str, str] = {}
    extents: List[ExtentLine] = []
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE:
            raise VmdkCorruptError(f"{where} line {number}: longer than {MAX_LINE} characters")
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split(None, 1)[0]
        if head in ("RW", "RDONLY", "NOACCESS"):
            if not with_extents:
                continue
            extents.append(_extent_line(line, number, where))
            if len(extents) > MAX_EXTENTS:
                raise VmdkUnsupportedError(f"{where}: more than {MAX_EXTENTS} extents")
            continue
        match = _KEY.fullmatch(line)
        if match is not None:  # anything else is ignored, as qemu does
            keys.setdefault(match["key"], _unquote(match["value"]))

    version: Optional[int] = None
    if "version" in keys:
        value = keys["version"]
        if value not in ("1", "2", "3"):
            raise VmdkUnsupportedError(f"{where}: version {value[:40]!r} (1 to 3 are supported)")
        version = int(value)
    cid = _hex32("CID", keys["CID"], where) if "CID" in keys else None
    parent = _hex32("parentCID", keys["parentCID"], where) if "parentCID" in keys else None
    return Descriptor(
        version=version,
        cid=cid,
        parent_cid=parent,
        create_type=keys.get("createType"),
        parent_hint=keys.get("parentFileNameHint"),
        extents=extents,
        keys=keys,
    )


def _extent_line(line: str, number: int, where: str) -> ExtentLine:
    match = _EXTENT.fullmatch(line)
    if match is None:
        raise VmdkCorruptError(f"{where} line {number}: invalid extent line {line[:100]!r}")
    kind = match["type"].upper()
    name, offset = match["name"], match["offset"]
    sectors = int(match["sectors"])
    what = f"{where} line {number} ({kind} extent)"
    if kind in REFUSED_EXTENTS:
        raise VmdkUnsupportedError(f"{what}: {REFUSED_EXTENTS[kind]} are not supported")
    if kind not in ("SPARSE", "FLAT", "VMFS", "ZERO"):
        raise VmdkUnsupportedError(f"{what}: unknown extent type {match['type']!r}")
    if not 0 < sectors <= MAX_CAPACITY_SECTORS:
        raise VmdkCorruptError(f"{what}: size {sectors} sectors (must be 1..2^54)")
    if kind == "ZERO":
        if name is not None:
            raise VmdkCorruptError(f"{what}: a ZERO extent names no file")
    elif name is None:
        raise VmdkCorruptError(f"{what}: no file name")
    elif kind == "FLAT" and offset is None:
        raise VmdkCorruptError(f"{what}: a FLAT extent needs an offset after its file name")
    elif kind != "FLAT" and offset is not None:
        raise VmdkCorruptError(f"{what}: only FLAT extents have an offset")
    if name is not None and not 0 < len(os.fsencode(name)) <= MAX_NAME:
        raise VmdkCorruptError(f"{what}: file name of {len(name)} bytes (1..{MAX_NAME})")
    if match["access"] == "NOACCESS":
        raise VmdkUnsupportedError(f"{what}: NOACCESS extents cannot be read")
    start = int(offset) if offset is not None else 0
    if start > MAX_CAPACITY_SECTORS:
        raise VmdkCorruptError(f"{what}: offset {start} sectors is beyond 2^63 bytes")
    return ExtentLine(number, match["access"], sectors, kind, name, start)


def check_create_type(desc: Descriptor, where: str) -> str:
    """The descriptor's createType, if it is one this reader converts; refuse delta links."""
    if desc.parent_hint is not None:
        parent = "absent" if desc.parent_cid is None else f"{desc.parent_cid:08x}"
        raise VmdkUnsupportedError(
            f"{where}: a delta link (parentCID {parent}, parentFileNameHint "
            f"{desc.parent_hint[:200]!r}): differencing VMDKs are not supported"
        )
    create = desc.create_type
    if create is None:
        raise VmdkCorruptError(f"{where}: no createType")
    if create in REFUSED_TYPES:
        raise VmdkUnsupportedError(
            f"{where}: createType {create!r}: {REFUSED_TYPES[create]} are not supported"
        )
    if create not in SUPPORTED_TYPES:
        raise VmdkUnsupportedError(
            f"{where}: createType {create[:64]!r} is not supported ({', '.join(SUPPORTED_TYPES)})"
        )
    return create


def resolve_extent(directory: Path, name: str, what: str) -> Path:
    """The real path of extent file ``name``, which must stay inside ``directory``."""
    if "\0" in name or any(ord(c) < 32 for c in name):
        raise VmdkCorruptError(f"{what}: file name {name!r} holds control characters")
    from ..formats import protocol_of

    protocol = protocol_of(name)
    if protocol is not None:
        raise _outside(
            f"{what}: extent {name!r} is a {protocol}: specification, not a file name; "
            "pyimagecache never opens those",
            name,
            directory,
        )
    if os.path.isabs(name):
        raise _outside(
            f"{what}: absolute extent path {name!r}: extents must lie in the descriptor's "
            "directory",
            name,
            directory,
        )
    if ".." in Path(name).parts:
        raise _outside(
            f"{what}: extent path {name!r} goes up with '..': extents must lie in the "
            f"descriptor's directory",
            name,
            directory,
        )
    base = os.path.realpath(directory)
    target = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([base, target]) != base:
        raise _outside(
            f"{what}: extent {name!r} resolves to {target}, outside the descriptor's directory "
            f"{base} (a symbolic link?)",
            name,
            directory,
        )
    return Path(target)


def _outside(message: str, name: str, directory: Path) -> Exception:
    from ..errors import VmdkExternalReferenceError

    return VmdkExternalReferenceError(message, reference=name, source=str(directory))
