"""Malformed VDIs: each case breaks one thing in a valid writer-made image and expects the
specific VdiError subclass, with a message naming the field or block map entry and its offset;
no other exception, no hang, and convert leaves nothing behind (tests/malformed.py)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Type

import pytest
from malformed import expect_refused, no_hang  # noqa: F401
from vdiwriter import BLOCK, DIFF, STATIC, UNDO, ZERO, VdiWriter

from pyimagecache.errors import VdiCorruptError, VdiError, VdiUnsupportedError
from pyimagecache.vdi import open_image

BMAP = 0x200


def writer() -> VdiWriter:
    w = VdiWriter(4 * BLOCK, order=[3, 0])
    w[0] = b"\x11" * 4096
    w[3] = b"\x33" * BLOCK
    w[1] = ZERO
    return w


def v(**overrides: int) -> bytes:
    return bytes(writer().build(**overrides).data)


def entry(index: int, value: int, **overrides: int) -> bytes:
    data = writer().build(**overrides).data
    struct.pack_into("<I", data, BMAP + 4 * index, value)
    return bytes(data)


def uuid_at(offset: int) -> bytes:
    data = writer().build().data
    data[offset] = 1
    return bytes(data)


@dataclass
class Case:
    name: str
    build: Callable[[], bytes]
    error: Type[VdiError]
    pattern: str
    detected: bool = True


TIB = 1 << 40
CASES = [
    Case("truncated-header", lambda: v()[:300], VdiCorruptError, "truncated: 300 of 512", False),
    Case(
        "version",
        lambda: v(version=0x00010002),
        VdiUnsupportedError,
        r"version 1\.2 \(offset 0x44\)",
    ),
    Case(
        "undo",
        lambda: v(image_type=UNDO),
        VdiUnsupportedError,
        r"image type 3 \(undo, offset 0x4c\)",
    ),
    Case("diff", lambda: v(image_type=DIFF), VdiUnsupportedError, "image type 4 .differencing"),
    Case("type-9", lambda: v(image_type=9), VdiUnsupportedError, "image type 9 .unknown"),
    Case(
        "bmap-unaligned",
        lambda: v(offset_bmap=0x201),
        VdiUnsupportedError,
        r"block map offset 0x201 \(offset 0x154\)",
    ),
    Case(
        "bmap-in-header",
        lambda: v(offset_bmap=0),
        VdiCorruptError,
        "block map offset 0x0 .* inside the header",
    ),
    Case(
        "data-unaligned",
        lambda: v(offset_data=0x401),
        VdiUnsupportedError,
        r"data offset 0x401 \(offset 0x158\)",
    ),
    Case(
        "sector-size",
        lambda: v(sector_size=4096),
        VdiUnsupportedError,
        r"sector size 4096 \(offset 0x168\)",
    ),
    Case(
        "block-size-2m",
        lambda: v(block_size=2 * BLOCK),
        VdiUnsupportedError,
        r"block size 2097152 \(offset 0x178\)",
    ),
    Case("block-size-zero", lambda: v(block_size=0), VdiUnsupportedError, "block size 0"),
    Case(
        "block-extra",
        lambda: v(block_extra=512),
        VdiUnsupportedError,
        r"block extra 512 \(offset 0x17c\)",
    ),
    Case(
        "disk-over-bmap",
        lambda: v(disk_size=5 * BLOCK),
        VdiCorruptError,
        r"disk size 5242880 .*blocks_in_image 4 \(offset 0x180\)",
    ),
    Case(
        "disk-over-qemu-max",
        lambda: v(disk_size=2**63),
        VdiUnsupportedError,
        "disk size .* qemu's limit",
    ),
    Case(
        "blocks-over-qemu-max",
        lambda: v(blocks_in_image=0x20000000),
        VdiUnsupportedError,
        "blocks_in_image 536870912 .* qemu's limit",
    ),
    Case(
        "disk-over-our-max",
        lambda: v(disk_size=5 * TIB, blocks_in_image=5 * TIB // BLOCK),
        VdiUnsupportedError,
        "more than this reader keeps",
    ),
    Case("link-uuid", lambda: uuid_at(0x1A8), VdiUnsupportedError, r"link UUID \(offset 0x1a8\)"),
    Case(
        "parent-uuid", lambda: uuid_at(0x1B8), VdiUnsupportedError, r"parent UUID \(offset 0x1b8\)"
    ),
    Case(
        "bmap-past-eof",
        lambda: v(offset_bmap=64 * BLOCK),
        VdiCorruptError,
        "block map at 0x4000000 .* past the end",
    ),
    Case(
        "bmap-over-data",
        lambda: v(offset_data=BMAP),
        VdiCorruptError,
        "block map at 0x200 .* overlaps the data area",
    ),
    Case(
        "entry-over-allocated",
        lambda: entry(2, 2),
        VdiCorruptError,
        r"entry 2 \(offset 0x208\): block 2 is not below blocks_allocated 2",
    ),
    Case(
        "entry-past-eof",
        lambda: entry(2, 5, blocks_allocated=9),
        VdiCorruptError,
        "entry 2 .*block 5 .* past the end",
    ),
    Case(
        "entries-share-block",
        lambda: entry(2, 1),
        VdiCorruptError,
        r"entries 0 and 2 \(offsets 0x200, 0x208\) both point to block 1",
    ),
    Case(
        "entries-share-block-0", lambda: entry(0, 0), VdiCorruptError, "entries 0 and 3 .* block 0"
    ),
    Case(
        "truncated-in-bmap",
        lambda: v()[:0x208],
        VdiCorruptError,
        "block map at 0x200 .* past the end",
    ),
    Case(
        "truncated-in-data",
        lambda: v()[: 0x400 + BLOCK + 100],
        VdiCorruptError,
        "entry 0 .* past the end",
    ),
    Case("truncated-last-block", lambda: v()[:-1], VdiCorruptError, "entry 0 .* past the end"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_image_gives_specific_error(tmp_path: Path, case: Case) -> None:
    expect_refused(tmp_path, case.build(), open_image, case.error, case.pattern, suffix=".vdi",
                   detected=case.detected)  # fmt: skip


def test_tiny_file_through_the_opener(tmp_path: Path) -> None:
    src = tmp_path / "tiny.vdi"
    src.write_bytes(v()[:300])
    with pytest.raises(VdiCorruptError, match="truncated"):
        from pyimagecache.converter import convert

        convert(src, tmp_path / "out.raw")


def test_base_images_are_valid(tmp_path: Path) -> None:
    from pyimagecache.opener import open_image as open_any

    for w in (writer(), VdiWriter(2 * BLOCK + 7, image_type=STATIC)):
        path = tmp_path / "ok.vdi"
        path.write_bytes(w.build().data)
        with open_any(path) as img:
            assert img.read(0, img.virtual_size) == w.expected()
