"""Malformed VHDs: each case breaks one thing in a valid writer-made image and expects the
specific VhdError subclass, with a message naming the field or BAT entry and its offset; no
other exception, no hang, and convert leaves nothing behind (tests/malformed.py)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Type

import pytest
from malformed import expect_refused, no_hang  # noqa: F401
from vhdwriter import FIXED, Block, VhdWriter, checksum, refresh_checksum

from pyimagecache.errors import VhdCorruptError, VhdError, VhdUnsupportedError
from pyimagecache.vhd import open_image

BS = 4096
HEADER = 512  # the dynamic header's offset in writer images
BAT = 1536


def dynamic(**kwargs: object) -> VhdWriter:
    w = VhdWriter(6 * BS, block_size=BS, **kwargs)  # type: ignore[arg-type]
    w[0] = Block(b"\x11" * BS)
    w[2] = Block(b"\x22" * 100)
    w[5] = Block(b"\x33" * BS, [True, False] * 4)
    return w


def fixed(creator: bytes = b"qem2", **kwargs: object) -> VhdWriter:
    w = VhdWriter(64 * 512, disk_type=FIXED, creator=creator, **kwargs)  # type: ignore[arg-type]
    w.fixed_data = b"fixed" * 100
    return w


def both_footers(data: bytearray, at: int, fmt: str, value: int) -> bytearray:
    for base in (0, len(data) - 512):
        struct.pack_into(fmt, data, base + at, value)
        refresh_checksum(data, base)
    return data


def header_field(data: bytearray, at: int, fmt: str, value: int) -> bytearray:
    struct.pack_into(fmt, data, HEADER + at, value)
    return data


def bat(data: bytearray, index: int, value: int) -> bytearray:
    struct.pack_into(">I", data, BAT + 4 * index, value)
    return data


def bat_value(data: bytearray, index: int) -> int:
    value: int = struct.unpack_from(">I", data, BAT + 4 * index)[0]
    return value


@dataclass
class Case:
    name: str
    build: Callable[[], bytes]
    error: Type[VhdError]
    pattern: str
    detected: bool = True


def d() -> bytearray:
    return dynamic().build().data


def f(creator: bytes = b"qem2") -> bytearray:
    return fixed(creator).build().data


def zero_head(data: bytearray) -> bytearray:
    data[:512] = bytes(512)
    return data


def fixed_footer_at_head() -> bytearray:
    data = d()
    struct.pack_into(">I", data, 60, FIXED)
    refresh_checksum(data, 0)
    return data


def bad_head_checksum() -> bytearray:
    data = d()
    data[100] ^= 0xFF
    return data


def bad_fixed_checksum() -> bytearray:
    data = f()
    data[-400] ^= 1
    return data


def truncate(data: bytearray, n: int) -> bytes:
    return bytes(data[:n])


def differencing() -> bytearray:
    return VhdWriter(4 * BS, block_size=BS, disk_type=4, parent_name="parent.vhd").build().data


def fixed_data(extra: int) -> bytes:
    data = f()
    return bytes(data[:-512]) + bytes(extra) + bytes(data[-512:])


def overlapping_bat() -> bytearray:
    data = d()
    return bat(data, 2, bat_value(data, 0) + 1)


def many_same() -> bytearray:
    w = VhdWriter(64 * BS, block_size=BS)
    w[0] = Block(b"one")
    data = w.build().data
    for i in range(1, 64):
        bat(data, i, bat_value(data, 0))
    return data


CASES = [
    Case(
        "tiny-file",
        lambda: b"conectix" + bytes(100),
        VhdCorruptError,
        "smaller than a footer",
        False,
    ),
    Case("fixed-no-cookie", lambda: bytes(4096), VhdCorruptError, "cookie", False),
    Case(
        "head-checksum",
        bad_head_checksum,
        VhdCorruptError,
        r"offset 0x0: checksum .* \(offset 0x40\)",
    ),
    Case("fixed-checksum", bad_fixed_checksum, VhdCorruptError, r"checksum .* computed"),
    Case(
        "version",
        lambda: both_footers(d(), 12, ">I", 0x00020000),
        VhdUnsupportedError,
        r"version 0x00020000 \(offset 0xc\)",
    ),
    Case(
        "disk-type-7",
        lambda: both_footers(d(), 60, ">I", 7),
        VhdUnsupportedError,
        r"disk type 7 \(offset 0x3c\)",
    ),
    Case("disk-type-0", lambda: both_footers(d(), 60, ">I", 0), VhdUnsupportedError, "disk type 0"),
    Case(
        "fixed-type-at-head",
        fixed_footer_at_head,
        VhdCorruptError,
        "disk type 2 .* only at the end",
    ),
    Case(
        "dynamic-without-head-copy", lambda: zero_head(d()), VhdCorruptError, "no copy at offset 0"
    ),
    Case(
        "over-2040-gib",
        lambda: both_footers(
            dynamic(creator=b"win ").build().data, 48, ">Q", (0xFF000000 + 1) * 512
        ),
        VhdUnsupportedError,
        "2040 GiB",
    ),
    Case(
        "data-offset-past-eof",
        lambda: both_footers(d(), 16, ">Q", 1 << 40),
        VhdCorruptError,
        r"data offset 0x10000000000 \(offset 0x10\)",
    ),
    Case(
        "data-offset-zero",
        lambda: both_footers(d(), 16, ">Q", 0),
        VhdCorruptError,
        "data offset 0x0",
    ),
    Case(
        "data-offset-all-ones",
        lambda: both_footers(d(), 16, ">Q", 2**64 - 1),
        VhdCorruptError,
        "data offset",
    ),
    Case(
        "dynamic-cookie",
        lambda: header_field(d(), 0, ">8s", b"cxspars!"),
        VhdCorruptError,
        "cxsparse",
    ),  # type: ignore[arg-type]
    Case(
        "block-size-odd",
        lambda: header_field(d(), 32, ">I", 3000),
        VhdCorruptError,
        r"block size 3000 \(offset 0x220\)",
    ),
    Case(
        "block-size-256",
        lambda: header_field(d(), 32, ">I", 256),
        VhdCorruptError,
        "block size 256",
    ),
    Case(
        "block-size-zero", lambda: header_field(d(), 32, ">I", 0), VhdCorruptError, "block size 0"
    ),
    Case(
        "table-too-small",
        lambda: header_field(d(), 28, ">I", 5),
        VhdCorruptError,
        r"max_table_entries 5 \(offset 0x21c\)",
    ),
    Case(
        "table-over-qemu-limit",
        lambda: header_field(d(), 28, ">I", 0x7FFFFFFF // 4 + 1),
        VhdCorruptError,
        "qemu's limit",
    ),
    Case(
        "table-over-our-limit",
        lambda: header_field(d(), 28, ">I", (4 << 20) + 1),
        VhdUnsupportedError,
        "more than this reader keeps",
    ),
    Case(
        "table-past-eof",
        lambda: header_field(d(), 28, ">I", 1 << 20),
        VhdCorruptError,
        "BAT at 0x600 .* past the end",
    ),
    Case(
        "table-offset-past-eof",
        lambda: header_field(d(), 16, ">Q", 1 << 50),
        VhdCorruptError,
        "table_offset, offset 0x210",
    ),
    Case(
        "table-over-header",
        lambda: header_field(d(), 16, ">Q", 1024),
        VhdCorruptError,
        "overlaps the footer copy or the dynamic header",
    ),
    Case(
        "table-over-footer-copy",
        lambda: header_field(d(), 16, ">Q", 0),
        VhdCorruptError,
        "overlaps",
    ),
    Case(
        "entry-past-eof",
        lambda: bat(d(), 2, 1 << 24),
        VhdCorruptError,
        r"BAT entry 2 \(offset 0x608\).*past the end",
    ),
    Case(
        "entry-just-past-eof",
        lambda: bat(d(), 5, bat_value(d(), 5) + 2),
        VhdCorruptError,
        "BAT entry 5",
    ),
    Case(
        "entry-over-bat",
        lambda: bat(d(), 1, 3),
        VhdCorruptError,
        "BAT entry 1 .* overlaps the metadata at 0x600",
    ),
    Case(
        "entry-over-footer-copy",
        lambda: bat(d(), 1, 0),
        VhdCorruptError,
        "BAT entry 1 .* metadata at 0x0",
    ),
    Case(
        "entries-share-block",
        lambda: bat(d(), 2, bat_value(d(), 0)),
        VhdCorruptError,
        r"BAT entries 0 and 2 \(offsets 0x600, 0x608\)",
    ),
    Case("entries-overlap", overlapping_bat, VhdCorruptError, "BAT entries 0 and 2 .* overlapping"),
    Case("entries-cannot-fit", many_same, VhdCorruptError, "64 allocated blocks .* cannot all fit"),
    Case(
        "extra-entry-past-eof",
        lambda: bat(dynamic(max_table_entries=9).build().data, 8, 1 << 20),
        VhdCorruptError,
        "BAT entry 8",
    ),
    Case("differencing", differencing, VhdUnsupportedError, "differencing .*'parent.vhd'"),
    Case(
        "fixed-data-longer",
        lambda: fixed_data(512),
        VhdCorruptError,
        r"current_size 32768 \(offset 0x.*\), but the file holds 33280",
    ),
    Case(
        "fixed-data-shorter",
        lambda: bytes(f()[512:]),
        VhdCorruptError,
        "current_size 32768 .* holds 32256",
    ),
    Case(
        "fixed-geometry-larger",
        lambda: fixed(b"vpc ", chs=(100, 16, 63)).build().data,
        VhdCorruptError,
        "geometry at .* more than the 32768 bytes",
    ),
]
for cut in (600, 1024, 1600, 2100, 9000):
    CASES.append(
        Case(
            f"truncated-{cut}",
            lambda cut=cut: truncate(d(), cut),
            VhdCorruptError,
            "past the end|truncated|header",
        )
    )  # type: ignore[misc]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_image_gives_specific_error(tmp_path: Path, case: Case) -> None:
    expect_refused(tmp_path, case.build(), open_image, case.error, case.pattern,
                   suffix=".vhd", detected=case.detected)  # fmt: skip


def test_base_images_are_valid(tmp_path: Path) -> None:
    for w in (dynamic(), fixed(), dynamic(max_table_entries=9)):
        path = tmp_path / "ok.vhd"
        path.write_bytes(w.build().data)
        from pyimagecache.opener import open_image as open_any

        with open_any(path) as img:
            assert img.read(0, img.virtual_size) == w.expected()


def test_footer_copy_missing_at_end_is_accepted(tmp_path: Path) -> None:
    """qemu reads a dynamic disk whose trailing footer copy is gone (only the blocks must fit)."""
    w = dynamic()
    path = tmp_path / "ok.vhd"
    path.write_bytes(w.build().data[:-512])
    with open_image(__import__("pyimagecache.sourcefile").sourcefile.SourceFile.open(path)) as img:
        assert img.read(0, img.virtual_size) == w.expected()


def test_checksum_helper_matches_reader() -> None:
    data = d()
    raw = bytearray(data[:512])
    raw[64:68] = bytes(4)
    assert struct.unpack_from(">I", data, 64)[0] == checksum(raw)
