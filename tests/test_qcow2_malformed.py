"""Malformed images, modelled on qemu iotests 060 (corrupt metadata), 080 (hostile header
fields), 214 (compressed clusters), 271 (extended L2 bitmaps) and 287 (compression type).

Each case corrupts one thing in a valid writer-made image and expects a specific Qcow2Error
subclass whose message names the field, or the table and the entry's index/offset. Every case
also checks: no other exception type, no hang (SIGALRM), and ``convert`` neither creates dst nor
touches an existing one, nor leaves temporary files behind.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Type

import pytest
from malformed import no_hang  # noqa: F401 (autouse: every case fails rather than hangs)
from qcow2writer import (
    COPIED,
    EXT_FEATURE_TABLE,
    INCOMPAT_COMPRESSION,
    INCOMPAT_DATA_FILE,
    Built,
    Compressed,
    Data,
    Qcow2Writer,
    Sub,
    Zero,
)

from pyimagecache.errors import (
    MissingExtraError,
    Qcow2CorruptError,
    Qcow2Error,
    Qcow2UnsupportedError,
)

qcow2 = pytest.importorskip("pyimagecache.qcow2")

CS = 4096  # small clusters keep every case fast


def base(version: int = 3, extended_l2: bool = False, compression: str = "deflate") -> Qcow2Writer:
    """A small valid image with every cluster kind the version allows (extended L2 needs
    16 KiB clusters; everything else uses CS)."""
    bits = 14 if extended_l2 else 12
    w = Qcow2Writer(
        16 << bits,
        cluster_bits=bits,
        version=version,
        extended_l2=extended_l2,
        compression=compression,
    )
    cs = w.cluster_size
    w[0] = Data(b"\x11" * cs)
    w[1] = Compressed(b"\x22" * cs)
    w[2] = Compressed(bytes(range(256)) * (cs // 256))
    w[3] = Data(b"\x33" * 100)
    if version == 3:
        w[4] = Zero()
        w[5] = Zero(preallocated=True)
    if extended_l2:
        w[6] = Sub(b"\x44" * cs, alloc=0x0000FFFF, zero=0xFFFF0000)
        w[7] = Sub(None, alloc=0, zero=0x00FF00FF)
    w[9] = Data(b"\x55" * cs)
    return w


def words(name: str) -> str:
    """Regex for a field named in snake_case or in words: l1_table_offset ~ 'L1 table offset'."""
    return r"[_ -]?".join(re.escape(part) for part in name.split("_"))


def entry(table: str, index: int, offset: Optional[int] = None) -> str:
    """Regex: the table's name and the entry's index or file offset (decimal or hex)."""
    refs = [rf"\b{index}\b"]
    if offset is not None:
        refs += [rf"\b{offset}\b", rf"{offset:#x}\b"]
    ref = "|".join(refs)
    return rf"(?s)(?:{table}).*(?:{ref})|(?:{ref}).*(?:{table})"


@dataclass
class Case:
    name: str
    make: Callable[[], Built]
    error: Type[Exception]
    message: str  # regex, searched case-insensitively

    def __str__(self) -> str:
        return self.name


def header(field: str, value: int, **kw: object) -> Callable[[], Built]:
    def make() -> Built:
        b = base(**kw).build()  # type: ignore[arg-type]
        b.set_header(field, value)
        return b

    return make


def mutate(fn: Callable[[Built], None], **kw: object) -> Callable[[], Built]:
    def make() -> Built:
        b = base(**kw).build()  # type: ignore[arg-type]
        fn(b)
        return b

    return make


def l2(guest_cluster: int, value: Callable[[Built], int], **kw: object) -> Callable[[], Built]:
    return mutate(lambda b: b.set_l2_entry(guest_cluster, value(b)), **kw)


def l2_at(b: Built, guest_cluster: int) -> int:
    return b.l2_entry_offset(guest_cluster)


def with_stream(stream: bytes, extra: int = 0, codec: str = "deflate") -> Callable[[], Built]:
    def make() -> Built:
        w = base(compression=codec)
        w[8] = Compressed(bytes(CS), stream=stream, extra_sectors=extra)
        return w.build()

    return make


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


def name_feature(b: Built, bit: int, name: str) -> None:
    """Rename the first feature-name-table entry to describe incompatible ``bit``."""
    table = b.extensions[EXT_FEATURE_TABLE] + 8
    struct.pack_into(">BB46s", b.data, table, 0, bit, name.encode())


def snapshot_image() -> Qcow2Writer:
    w = base()
    w.snapshot("snap")
    w[0] = Data(b"\x66" * CS)
    return w


def truncated_by_sector_count() -> Built:
    # an incompressible cluster needs ~9 sectors; the descriptor claims one
    w = base()
    w[10] = Compressed(bytes((i * 7919) % 251 for i in range(CS)), level=0)
    b = w.build()
    x = 62 - (12 - 8)
    b.set_l2_entry(10, b.l2_entry(10) & ~(((1 << (12 - 8)) - 1) << x))
    return b


def l1_past_eof(b: Built) -> None:
    b.set_u64(b.l1_entry_offset(0), (len(b.data) + 10 * CS) | COPIED)


def set_backing(name_len: int, offset: Optional[int] = None) -> Callable[[], Built]:
    def make() -> Built:
        w = base()
        w.backing_file = "b.raw"
        b = w.build()
        if offset is not None:
            b.set_header("backing_file_offset", offset)
        b.set_header("backing_file_size", name_len)
        return b

    return make


def missing_backing() -> Built:
    w = base()
    w.backing_file = "no-such-base.qcow2"
    w.backing_format = "qcow2"
    return w.build()


def bad_extension_length(b: Built) -> None:
    # the feature table header claims more bytes than cluster 0 holds
    b.set_u32(b.extensions[EXT_FEATURE_TABLE] + 4, 10 * CS)


def bitmap_on_compressed(b: Built) -> None:
    b.set_bitmap(1, 1)


CASES: List[Case] = [
    # -- header (iotest 080) --
    Case("bad magic", header("magic", b"QFI\x00"), Qcow2CorruptError, "magic"),
    Case("version 1", header("version", 1), Qcow2UnsupportedError, "version"),
    Case("version 4", header("version", 4), Qcow2UnsupportedError, "version"),
    Case("cluster_bits 8", header("cluster_bits", 8), Qcow2Error, words("cluster_bits")),
    Case("cluster_bits 22", header("cluster_bits", 22), Qcow2Error, words("cluster_bits")),
    Case("cluster_bits huge", header("cluster_bits", 2**31), Qcow2Error, words("cluster_bits")),
    Case("header_length 100", header("header_length", 100), Qcow2CorruptError, "header.length"),
    Case("header_length odd", header("header_length", 107), Qcow2CorruptError, "header.length"),
    Case(
        "header_length > cluster",
        header("header_length", 2 * CS),
        Qcow2CorruptError,
        "header.length",
    ),
    Case("AES encryption", header("crypt_method", 1), Qcow2UnsupportedError, "AES|encrypt"),
    Case("LUKS encryption", header("crypt_method", 2), Qcow2UnsupportedError, "LUKS|encrypt"),
    Case("unknown crypt_method", header("crypt_method", 7), Qcow2Error, "crypt|encrypt"),
    Case(
        "unknown incompatible bit",
        header("incompatible_features", 1 << 40),
        Qcow2UnsupportedError,
        r"\b40\b",
    ),
    Case(
        "named unknown incompatible bit",
        mutate(
            lambda b: (
                name_feature(b, 7, "frobnication"),
                b.set_header("incompatible_features", 1 << 7),
            )
        ),
        Qcow2UnsupportedError,
        "frobnication",
    ),
    Case(
        "data file bit without a data file name",
        header("incompatible_features", INCOMPAT_DATA_FILE),
        Qcow2Error,
        "data.file",
    ),
    Case(
        "compression_type zstd without bit 3",
        header("compression_type", 1),
        Qcow2CorruptError,
        "compression",
    ),
    Case(
        "bit 3 with deflate compression_type",
        header("incompatible_features", INCOMPAT_COMPRESSION),
        Qcow2CorruptError,
        "compression",
    ),
    Case(
        "unknown compression_type",
        mutate(
            lambda b: (
                b.set_header("compression_type", 5),
                b.set_header("incompatible_features", INCOMPAT_COMPRESSION),
            )
        ),
        Qcow2Error,
        "compression",
    ),
    Case("refcount_order 7", header("refcount_order", 7), Qcow2Error, words("refcount_order")),
    Case(
        "huge virtual size",
        header("size", 2**63 + 5),
        Qcow2Error,
        r"size",
    ),
    Case("l1_size too small", header("size", 4096 * 512 * 3), Qcow2CorruptError, "l1"),
    Case("l1_size beyond 32 MiB", header("l1_size", 2**23), Qcow2Error, "l1"),
    Case(
        "l1_table_offset misaligned",
        header("l1_table_offset", CS + 8),
        Qcow2CorruptError,
        words("l1_table_offset") + "|l1 table",
    ),
    Case(
        "l1_table_offset past EOF",
        header("l1_table_offset", 1 << 40),
        Qcow2CorruptError,
        "l1",
    ),
    Case(
        "refcount_table_offset misaligned",
        header("refcount_table_offset", 3 * CS + 512),
        Qcow2CorruptError,
        "refcount",
    ),
    Case(
        "refcount table too large",
        header("refcount_table_clusters", 2**31),
        Qcow2Error,
        "refcount",
    ),
    Case("backing name too long", set_backing(1024), Qcow2Error, "backing"),
    Case("backing name past cluster 0", set_backing(5, offset=CS + 3), Qcow2Error, "backing"),
    Case("missing backing file", missing_backing, Qcow2UnsupportedError, "no-such-base"),
    Case(
        "header extension past cluster 0",
        mutate(bad_extension_length),
        Qcow2CorruptError,
        "extension",
    ),
    Case(
        "snapshot table past EOF",
        lambda: _snap_header("snapshots_offset", 1 << 40),
        Qcow2CorruptError,
        "snapshot",
    ),
    Case(
        "snapshot table offset overflows",
        lambda: _snap_header("snapshots_offset", 2**64 - CS),
        Qcow2CorruptError,
        "snapshot",
    ),
    Case(
        "snapshot table misaligned",
        lambda: _snap_header("snapshots_offset", 1, +100),
        Qcow2CorruptError,
        "snapshot",
    ),
    Case(
        "too many snapshots",
        lambda: _snap_header("nb_snapshots", 2**20),
        Qcow2Error,
        "snapshot",
    ),
    Case("truncated header", mutate(lambda b: b.truncate(50)), Qcow2CorruptError, "header|trunc"),
    Case("truncated in L1", mutate(lambda b: b.truncate(CS + 4)), Qcow2CorruptError, "l1|trunc"),
    # -- L1/L2 tables (iotest 060) --
    Case(
        "L1 entry reserved bits",
        mutate(lambda b: b.set_u64(b.l1_entry_offset(0), b.u64(b.l1_entry_offset(0)) | 1)),
        Qcow2CorruptError,
        entry("l1", 0),
    ),
    Case(
        "L1 entry misaligned",
        mutate(lambda b: b.set_u64(b.l1_entry_offset(0), b.u64(b.l1_entry_offset(0)) + 512)),
        Qcow2CorruptError,
        entry("l1", 0),
    ),
    Case("L2 table past EOF", mutate(l1_past_eof), Qcow2CorruptError, entry("l1|l2", 0)),
    Case(
        "L2 offset >= 2^56",
        mutate(lambda b: b.set_u64(b.l1_entry_offset(0), (1 << 56) | COPIED)),
        Qcow2CorruptError,
        entry("l1", 0),
    ),
    Case(
        "data cluster misaligned",
        l2(0, lambda b: b.host_offsets[0] + 512 | COPIED),
        Qcow2CorruptError,
        entry("l2", 0, None),
    ),
    Case(
        "data cluster past EOF",
        l2(9, lambda b: (len(b.data) + 100 * CS) // CS * CS | COPIED),
        Qcow2CorruptError,
        entry("l2", 9),
    ),
    Case(
        "data cluster offset >= 2^56",
        l2(9, lambda b: (1 << 56) | b.host_offsets[9] | COPIED),
        Qcow2CorruptError,
        entry("l2", 9),
    ),
    Case(
        "L2 reserved bits",
        l2(0, lambda b: b.l2_entry(0) | 0x10),
        Qcow2CorruptError,
        entry("l2", 0),
    ),
    Case(
        "zero flag on v2",
        l2(3, lambda b: b.l2_entry(3) | 1, version=2),
        Qcow2CorruptError,
        entry("l2|zero", 3),
    ),
    # -- extended L2 (iotest 271) --
    Case(
        "subcluster both allocated and zero",
        mutate(lambda b: b.set_bitmap(6, 0x1 | 0x1 << 32), extended_l2=True),
        Qcow2CorruptError,
        entry("subcluster|bitmap|l2", 6),
    ),
    Case(
        "allocated subclusters without host cluster",
        mutate(lambda b: b.set_bitmap(7, 0x3), extended_l2=True),
        Qcow2CorruptError,
        entry("subcluster|bitmap|l2", 7),
    ),
    Case(
        "bitmap on a compressed cluster",
        mutate(bitmap_on_compressed, extended_l2=True),
        Qcow2CorruptError,
        entry("subcluster|bitmap|l2|compress", 1),
    ),
    # -- compressed clusters (iotests 060, 214, 287) --
    Case("compressed garbage", with_stream(b"\xff" * 300), Qcow2CorruptError, entry("compress", 8)),
    Case(
        "compressed stream too short",
        with_stream(deflate(b"\x01" * 100)),
        Qcow2CorruptError,
        entry("compress", 8),
    ),
    Case(
        "compressed stream truncated by the sector count",
        truncated_by_sector_count,
        Qcow2CorruptError,
        entry("compress", 10),
    ),
    Case(
        "compressed cluster past EOF",
        l2(1, lambda b: b.l2_entry(1) + len(b.data) + 64 * CS),
        Qcow2CorruptError,
        entry("compress|l2", 1),
    ),
    Case(
        "zstd garbage",
        with_stream(b"\x28\xb5\x2f\xfd" + b"\xee" * 200, codec="zstd"),
        Qcow2CorruptError,
        entry("compress|zstd", 8),
    ),
    Case(
        "deflate data in a zstd image",
        with_stream(deflate(bytes(range(256)) * 16), codec="zstd"),
        Qcow2CorruptError,
        entry("compress|zstd", 8),
    ),
    Case(
        "snapshot L1 ignored, active L1 corrupt",
        lambda: _corrupt_active_keep_snapshot(),
        Qcow2CorruptError,
        entry("l2", 0),
    ),
]


def _snap_header(field: str, value: int, add: int = 0) -> Built:
    b = snapshot_image().build()
    b.set_header(field, value if not add else b.snapshots_offset + add)
    return b


def _corrupt_active_keep_snapshot() -> Built:
    b = snapshot_image().build()
    b.set_l2_entry(0, b.host_offsets[0] + 1024 | COPIED)
    return b


def exercise(path: Path) -> None:
    """What the harnesses do: open, walk extents, read everything (bounded)."""
    with qcow2.open(path) as img:
        list(img.extents())
        size = min(img.virtual_size, 64 << 20)
        for off in range(0, size, 1 << 20):
            img.read(off, min(1 << 20, size - off))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_malformed_image_gives_specific_error(tmp_path: Path, case: Case) -> None:
    built = case.make()
    src = tmp_path / "bad.qcow2"
    built.save(src)
    with pytest.raises(case.error) as info:
        exercise(src)
    assert isinstance(info.value, Qcow2Error)
    assert re.search(case.message, str(info.value), re.I), str(info.value)

    dst = tmp_path / "out.raw"
    with pytest.raises(case.error):
        qcow2.convert(src, dst)
    assert not dst.exists()

    dst.write_bytes(b"precious")
    with pytest.raises(case.error):
        qcow2.convert(src, dst, workers=2)
    assert dst.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.qcow2", "out.raw"]


def test_base_images_are_valid(tmp_path: Path) -> None:
    # Guards the suite: every case starts from an image the reader accepts.
    for kw in ({}, {"version": 2}, {"extended_l2": True}, {"compression": "zstd"}):
        w = base(**kw)  # type: ignore[arg-type]
        built = w.build()
        path = tmp_path / "ok.qcow2"
        built.save(path)
        with qcow2.open(path) as img:
            assert img.read(0, img.virtual_size) == built.expected()
    path = tmp_path / "snap.qcow2"
    snapshot_image().build().save(path)
    exercise(path)


def test_compressed_past_eof_with_valid_stream_is_padded(tmp_path: Path) -> None:
    # iotest 214: the sector count may claim bytes beyond EOF; the stream itself is complete.
    w = base()
    w[15] = Compressed(b"\x77" * CS, extra_sectors=7)
    built = w.build()
    path = tmp_path / "pad.qcow2"
    built.save(path)
    off, n = built.compressed_spans[15]
    assert off + n == len(built.data)
    with qcow2.open(path) as img:
        assert img.read(15 * CS, CS) == b"\x77" * CS


@pytest.mark.parametrize("codec", ["deflate", "zstd"])
def test_decompression_bomb_is_bounded(tmp_path: Path, codec: str) -> None:
    # A stream inflating ~1000x beyond one cluster: read exactly one cluster, ignore the rest.
    if codec == "deflate":
        stream = deflate(b"\x01" * (4 << 20))
    else:
        import zstandard

        stream = zstandard.ZstdCompressor().compress(b"\x01" * (16 << 20))
    w = base(compression=codec)
    w[8] = Compressed(b"\x01" * CS, stream=stream)
    built = w.build()
    path = tmp_path / "bomb.qcow2"
    built.save(path)
    with qcow2.open(path) as img:
        assert img.read(8 * CS, CS) == b"\x01" * CS
    dst = tmp_path / "bomb.raw"
    qcow2.convert(path, dst)
    assert dst.read_bytes() == built.expected()


def test_zstd_without_decoder_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from pyimagecache import _codecs

    path = tmp_path / "z.qcow2"
    base(compression="zstd").build().save(path)
    # Hide both zstd bindings and forget a decoder picked earlier in this process.
    for name in ("zstandard", "compression", "compression.zstd"):
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    monkeypatch.setattr(_codecs, "_zstd_decode", None)
    with pytest.raises(MissingExtraError, match="zstd"):
        exercise(path)
    dst = tmp_path / "z.raw"
    with pytest.raises(MissingExtraError, match="zstd"):
        qcow2.convert(path, dst)
    assert not dst.exists()


def test_l1_entries_sharing_an_l2_table(tmp_path: Path) -> None:
    # Aliased L2 tables would let a tiny file describe an endless walk; qemu-img check flags it.
    span = CS // 8 * CS  # guest bytes per L1 entry
    w = Qcow2Writer(2 * span, cluster_bits=12)
    w[0] = Data(b"\x01" * CS)
    w[span // CS] = Data(b"\x02" * CS)
    b = w.build()
    b.set_u64(b.l1_entry_offset(1), b.u64(b.l1_entry_offset(0)))
    src = tmp_path / "alias.qcow2"
    b.save(src)
    with pytest.raises(Qcow2CorruptError, match=r"L1 entries 0 and 1"):
        exercise(src)
    dst = tmp_path / "out.raw"
    with pytest.raises(Qcow2CorruptError):
        qcow2.convert(src, dst)
    assert not dst.exists()


def long_image(version: int = 3) -> Built:
    """128 contiguous data clusters then 128 unallocated ones, in one L2 table: whole
    64-entry stretches that the decoder checks at once."""
    w = Qcow2Writer(256 * CS, cluster_bits=12, version=version)
    for c in range(128):
        w[c] = Data(bytes([c + 1]) * CS)
    return w.build()


def _contiguous_run_past_eof(b: Built) -> None:
    # Entries 64..127 stay contiguous, but from entry 100 on their clusters lie past EOF.
    end = -(-len(b.data) // CS) * CS
    for c in range(64, 128):
        b.set_l2_entry(c, end - (100 - c) * CS | COPIED)


def _fill(first: int, last: int, value: int) -> Callable[[Built], None]:
    def fill(b: Built) -> None:
        for c in range(first, last + 1):
            b.set_l2_entry(c, value)

    return fill


def _set_bits(c: int, bits: int) -> Callable[[Built], None]:
    return lambda b: b.set_l2_entry(c, b.l2_entry(c) | bits)


@pytest.mark.parametrize(
    "version, corrupt, first_bad, what",
    [
        (3, _set_bits(70, 0x10), 70, "reserved bits"),
        (3, _set_bits(127, 1 << 56), 127, "reserved bits"),
        (3, _contiguous_run_past_eof, 100, "past the end of the file"),
        (3, _fill(128, 191, 0x10), 128, "reserved bits"),
        (2, _fill(128, 191, 1), 128, "zero flag"),
    ],
    ids=["reserved-mid-run", "reserved-run-end", "run-past-eof", "reserved-holes", "v2-zero"],
)
def test_errors_inside_long_runs_name_the_first_bad_entry(
    tmp_path: Path, version: int, corrupt: Callable[[Built], None], first_bad: int, what: str
) -> None:
    # Stretches of entries are validated at once; the error must still name the first bad one.
    b = long_image(version)
    corrupt(b)
    src = tmp_path / "bad.qcow2"
    b.save(src)
    with pytest.raises(Qcow2CorruptError) as info:
        exercise(src)
    assert f"L2 entry {first_bad} " in str(info.value), str(info.value)
    assert what in str(info.value), str(info.value)
    with pytest.raises(Qcow2CorruptError):
        qcow2.convert(src, tmp_path / "out.raw")
    assert not (tmp_path / "out.raw").exists()


def test_long_runs_are_valid(tmp_path: Path) -> None:
    # Guards the cases above: the uncorrupted image reads back, as one data and one hole run.
    for version in (2, 3):
        b = long_image(version)
        b.save(tmp_path / "ok.qcow2")
        with qcow2.open(tmp_path / "ok.qcow2") as img:
            assert img.read(0, img.virtual_size) == b.expected()
            assert [(e.offset, e.length, e.kind) for e in img.extents()] == [
                (0, 128 * CS, "data"),
                (128 * CS, 128 * CS, "unallocated"),
            ]
