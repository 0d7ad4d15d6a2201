"""Parse and validate the qcow2 header and its extensions (qemu's ``qcow2_do_open`` checks).

Nothing here trusts a field before checking it: every offset is range-checked against the file
size and the limits qemu enforces, so that later stages can index tables without re-checking.
"""

from __future__ import annotations

import struct
from typing import Dict, NamedTuple, Optional, Tuple

from ..errors import Qcow2CorruptError, Qcow2UnsupportedError

MAGIC = b"QFI\xfb"
V2_HEADER_LENGTH = 72
V3_MIN_HEADER_LENGTH = 104

MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_L1_BYTES = 32 << 20  # qemu's QCOW_MAX_L1_SIZE
MAX_REFTABLE_BYTES = 8 << 20  # qemu's QCOW_MAX_REFTABLE_SIZE
MAX_SNAPSHOTS = 65536  # qemu's QCOW_MAX_SNAPSHOTS
SNAPSHOT_HEADER_BYTES = 40
MAX_BACKING_NAME = 1023
MAX_OFFSET = 1 << 56  # host offsets are 56-bit in L1/L2 entries
INT64_MAX = (1 << 63) - 1

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
KNOWN_INCOMPAT = 0x1F
COMPAT_LAZY_REFCOUNTS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

EXT_END = 0
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

COMPRESSION_TYPES = {0: "deflate", 1: "zstd"}

_V2 = struct.Struct(">4sIQIIQIIQQIIQ")
_V3 = struct.Struct(">QQQII")
_EXT = struct.Struct(">II")


class Header(NamedTuple):
    """The validated header fields a reader needs (sizes in bytes, offsets into the file)."""

    version: int
    cluster_bits: int
    virtual_size: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int
    compatible_features: int
    autoclear_features: int
    refcount_order: int
    header_length: int
    compression_type: str
    backing_file: Optional[str]
    backing_format: Optional[str]
    data_file: Optional[str]
    feature_names: Dict[Tuple[int, int], str]

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def extended_l2(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_EXTL2)

    @property
    def l2_entries(self) -> int:
        """Entries per L2 table: one cluster of 8-byte (16-byte with extended L2) entries."""
        return self.cluster_size // (16 if self.extended_l2 else 8)

    @property
    def data_file_raw(self) -> bool:
        return bool(self.autoclear_features & AUTOCLEAR_DATA_FILE_RAW)


def _corrupt(message: str) -> Qcow2CorruptError:
    return Qcow2CorruptError(f"qcow2 header: {message}")


class Fields(NamedTuple):
    """The header's fields as stored (v2 fields, then v3's; v2 images get v3's defaults),
    before any of them is trusted beyond what decoding itself needs."""

    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    compression: int = 0

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits


def parse_header(cluster0: bytes, file_size: int) -> Header:
    """Decode and validate the header in ``cluster0`` (the first cluster, or the whole file if
    shorter): every field is checked before anything relies on it.

    >>> parse_header(open("disk.qcow2", "rb").read(2 << 20), size)  # doctest: +SKIP
    """
    fields = decode_fields(cluster0)
    _check_encryption(fields)
    if fields.backing_file_offset and fields.backing_file_offset < fields.header_length:
        raise _corrupt(
            f"backing_file_offset {fields.backing_file_offset} lies inside the header "
            f"({fields.header_length} bytes)"
        )
    ext_end = fields.backing_file_offset or fields.cluster_size
    exts = _read_extensions(cluster0, fields.header_length, min(ext_end, fields.cluster_size))
    names = _feature_names(exts.get(EXT_FEATURE_TABLE, b""))
    _check_features(fields, names)
    data_file = _data_file(fields, exts)
    _check_tables(fields, file_size)
    backing_format = None
    if EXT_BACKING_FORMAT in exts:
        backing_format = _decode_name(exts[EXT_BACKING_FORMAT], "backing format") or None
    return Header(
        version=fields.version,
        cluster_bits=fields.cluster_bits,
        virtual_size=fields.size,
        l1_size=fields.l1_size,
        l1_table_offset=fields.l1_table_offset,
        refcount_table_offset=fields.refcount_table_offset,
        refcount_table_clusters=fields.refcount_table_clusters,
        nb_snapshots=fields.nb_snapshots,
        snapshots_offset=fields.snapshots_offset,
        incompatible_features=fields.incompatible_features,
        compatible_features=fields.compatible_features,
        autoclear_features=fields.autoclear_features,
        refcount_order=fields.refcount_order,
        header_length=fields.header_length,
        compression_type=COMPRESSION_TYPES[fields.compression],
        backing_file=_backing_file(fields, cluster0),
        backing_format=backing_format,
        data_file=data_file,
        feature_names=names,
    )


def decode_fields(cluster0: bytes) -> Fields:
    """The header's fields, with the checks decoding needs: the magic, the version, a cluster
    size in range and a v3 header length that fits (they say where the other fields are)."""
    if len(cluster0) < 4 or cluster0[:4] != MAGIC:
        raise _corrupt(f"bad magic {cluster0[:4]!r}, expected {MAGIC!r}: not a qcow2 image")
    if len(cluster0) < V2_HEADER_LENGTH:
        raise _corrupt(f"truncated header: {len(cluster0)} bytes, at least 72 needed")
    v2: Tuple[int, ...] = _V2.unpack_from(cluster0)[1:]
    version, cluster_bits = v2[0], v2[3]
    if version not in (2, 3):
        raise Qcow2UnsupportedError(f"qcow2 header: version {version} is not supported (2 or 3)")
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise _corrupt(
            f"cluster_bits {cluster_bits} outside {MIN_CLUSTER_BITS}..{MAX_CLUSTER_BITS}"
        )
    if version == 2:
        return Fields._make(v2 + (0, 0, 0, 4, V2_HEADER_LENGTH, 0))
    if len(cluster0) < V3_MIN_HEADER_LENGTH:
        raise _corrupt(f"truncated header: {len(cluster0)} bytes, a v3 header has 104")
    incompat, compat, autoclear, refcount_order, header_length = _V3.unpack_from(cluster0, 72)
    if header_length < V3_MIN_HEADER_LENGTH or header_length % 8:
        raise _corrupt(f"header_length {header_length}: must be >= 104 and a multiple of 8")
    if header_length > 1 << cluster_bits:
        raise _corrupt(
            f"header_length {header_length} is larger than the cluster size {1 << cluster_bits}"
        )
    if len(cluster0) < header_length:
        raise _corrupt(f"truncated header: {len(cluster0)} of {header_length} bytes")
    compression = cluster0[104] if header_length > V3_MIN_HEADER_LENGTH else 0
    if refcount_order > 6:
        raise _corrupt(f"refcount_order {refcount_order} is larger than 6 (64-bit refcounts)")
    return Fields._make(
        v2 + (incompat, compat, autoclear, refcount_order, header_length, compression)
    )


def _check_encryption(fields: Fields) -> None:
    if fields.crypt_method == 1:
        raise Qcow2UnsupportedError("qcow2 image is encrypted (AES): encryption is not supported")
    if fields.crypt_method == 2:
        raise Qcow2UnsupportedError("qcow2 image is encrypted (LUKS): encryption is not supported")
    if fields.crypt_method != 0:
        raise _corrupt(f"unknown crypt_method {fields.crypt_method} (encryption: 0, 1 or 2)")


def _check_features(fields: Fields, names: Dict[Tuple[int, int], str]) -> None:
    """Incompatible features we do not know refuse the image; the compression type must agree
    with its feature bit; extended L2 entries need clusters of 16 KiB or more."""
    incompat, compression = fields.incompatible_features, fields.compression
    if incompat & ~KNOWN_INCOMPAT:
        raise Qcow2UnsupportedError(
            "qcow2 image uses unsupported incompatible features: "
            + ", ".join(
                names.get((0, bit), f"unknown bit {bit}")
                + (f" (bit {bit})" if (0, bit) in names else "")
                for bit in range(64)
                if incompat & ~KNOWN_INCOMPAT & (1 << bit)
            )
        )
    if compression not in COMPRESSION_TYPES:
        raise Qcow2UnsupportedError(f"qcow2 header: unknown compression_type {compression}")
    if bool(compression) != bool(incompat & INCOMPAT_COMPRESSION):
        raise _corrupt(
            f"compression_type {compression} ({COMPRESSION_TYPES[compression]}) disagrees with "
            f"incompatible feature bit 3 (compression type), which is "
            f"{'set' if incompat & INCOMPAT_COMPRESSION else 'clear'}"
        )
    if incompat & INCOMPAT_EXTL2 and fields.cluster_bits < 14:
        raise _corrupt(f"extended L2 entries need cluster_bits >= 14, not {fields.cluster_bits}")


def _data_file(fields: Fields, exts: Dict[int, bytes]) -> Optional[str]:
    """The external data file's name, when incompatible bit 2 says there is one."""
    if fields.incompatible_features & INCOMPAT_DATA_FILE:
        raw_name = exts.get(EXT_DATA_FILE)
        if not raw_name:
            raise Qcow2UnsupportedError(
                "qcow2 image has an external data file (incompatible bit 2) but no data file "
                "name extension: the data file cannot be located"
            )
        return _decode_name(raw_name, "data file name")
    if fields.autoclear_features & AUTOCLEAR_DATA_FILE_RAW:
        raise _corrupt("autoclear bit 1 (raw external data) is set without an external data file")
    return None


def _check_tables(fields: Fields, file_size: int) -> None:
    """The virtual size and every table the header locates (L1, refcount, snapshots): sizes
    capped as qemu caps them, offsets aligned and inside the file."""
    size, l1_size, cs = fields.size, fields.l1_size, fields.cluster_size
    if size > INT64_MAX:
        raise _corrupt(f"virtual size {size} is larger than 2^63 - 1")
    l2_entries = cs // (16 if fields.incompatible_features & INCOMPAT_EXTL2 else 8)
    span = l2_entries * cs  # guest bytes covered by one L1 entry
    if l1_size > MAX_L1_BYTES // 8:
        raise _corrupt(f"l1_size {l1_size}: the L1 table would exceed 32 MiB")
    needed = -(-size // span)
    if l1_size < needed:
        raise _corrupt(
            f"l1_size {l1_size} is too small for virtual size {size}: {needed} L1 entries needed"
        )
    _check_table("l1_table_offset", "L1 table", fields.l1_table_offset, l1_size * 8, cs, file_size)
    rt_clusters = fields.refcount_table_clusters
    if rt_clusters > MAX_REFTABLE_BYTES >> fields.cluster_bits:
        raise _corrupt(f"refcount_table_clusters {rt_clusters}: the refcount table exceeds 8 MiB")
    _check_table(
        "refcount_table_offset",
        "refcount table",
        fields.refcount_table_offset,
        rt_clusters * cs,
        cs,
        None,
    )
    nb = fields.nb_snapshots
    if nb > MAX_SNAPSHOTS:
        raise _corrupt(f"nb_snapshots {nb} exceeds {MAX_SNAPSHOTS} snapshots")
    if nb:
        _check_table(
            "snapshots_offset",
            "snapshot table",
            fields.snapshots_offset,
            nb * SNAPSHOT_HEADER_BYTES,
            cs,
            file_size,
        )


def _backing_file(fields: Fields, cluster0: bytes) -> Optional[str]:
    """The backing file's name (inside cluster 0, at most 1023 bytes), or None."""
    offset, length = fields.backing_file_offset, fields.backing_file_size
    if not offset:
        return None
    if length > MAX_BACKING_NAME:
        raise _corrupt(f"backing_file_size {length} exceeds {MAX_BACKING_NAME} bytes")
    if offset + length > fields.cluster_size:
        raise _corrupt(
            f"backing file name at {offset}+{length} runs past cluster 0 "
            f"({fields.cluster_size} bytes)"
        )
    if offset + length > len(cluster0):
        raise _corrupt("truncated header: the backing file name runs past the end of file")
    return _decode_name(cluster0[offset : offset + length], "backing file name") or None


def _check_table(
    field_name: str,
    what: str,
    offset: int,
    nbytes: int,
    cluster_size: int,
    file_size: Optional[int],
) -> None:
    """qemu's qcow2_validate_table, plus (for tables we read) a check against the file end."""
    if offset % cluster_size:
        raise _corrupt(f"{field_name} {offset:#x}: the {what} is not cluster aligned")
    if offset > INT64_MAX - nbytes:
        raise _corrupt(f"{field_name} {offset:#x}: the {what} ends beyond 2^63")
    if file_size is not None and nbytes and offset + nbytes > file_size:
        raise _corrupt(
            f"{field_name} {offset:#x}: the {what} ({nbytes} bytes) runs past the end of the "
            f"file ({file_size} bytes; truncated image?)"
        )


def _read_extensions(cluster0: bytes, start: int, end: int) -> Dict[int, bytes]:
    """Header extensions between the header and ``end``; the loop advances >= 8 bytes a step."""
    exts: Dict[int, bytes] = {}
    pos = start
    end = min(end, len(cluster0))
    while pos + _EXT.size <= end:
        ext_type, length = _EXT.unpack_from(cluster0, pos)
        if ext_type == EXT_END:
            break
        data_start = pos + _EXT.size
        if data_start + length > end:
            raise _corrupt(
                f"header extension {ext_type:#x} at offset {pos} is {length} bytes long and runs "
                f"past the extension area (ends at {end})"
            )
        exts.setdefault(ext_type, cluster0[data_start : data_start + length])
        pos = data_start + (length + 7) // 8 * 8
    return exts


def _feature_names(table: bytes) -> Dict[Tuple[int, int], str]:
    """The feature-name table: 48-byte entries of (type, bit, 46-byte NUL-padded name)."""
    names: Dict[Tuple[int, int], str] = {}
    for pos in range(0, len(table) - 47, 48):
        kind, bit = table[pos], table[pos + 1]
        name = table[pos + 2 : pos + 48].split(b"\0", 1)[0].decode("utf-8", "replace")
        if name:
            names[(kind, bit)] = name
    return names


def _decode_name(raw: bytes, what: str) -> str:
    try:
        return raw.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise _corrupt(f"the {what} is not valid UTF-8: {raw[:64]!r}") from None
