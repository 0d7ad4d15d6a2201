"""Property tests: dynamic (and fixed) VHDs from tests/vhdwriter.py read and convert back byte
for byte, with random block sizes, host orders, gaps and sector bitmaps; extents say DATA
exactly for the sectors whose bitmap bit is set.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vhdwriter import FIXED, Block, VhdWriter

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.diskimage import DATA, UNALLOCATED
from pyimagecache.opener import open_image

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SECTOR = 512


def bitmap(rng: random.Random, sectors: int, style: str) -> List[bool]:
    if style == "full":
        return [True] * sectors
    if style == "empty":
        return [False] * sectors
    if style == "runs":
        out, bit = [], rng.random() < 0.5
        while len(out) < sectors:
            out += [bit] * rng.randint(1, max(1, sectors // 3))
            bit = not bit
        return out[:sectors]
    return [rng.random() < 0.5 for _ in range(sectors)]


@st.composite
def layouts(draw: st.DrawFn) -> VhdWriter:
    block_size = draw(st.sampled_from([512, 1024, 4096, 8192, 65536]))
    count = draw(st.integers(1, 12))
    tail = draw(st.sampled_from([0, 0, SECTOR, block_size // 2]))
    size = max(SECTOR, count * block_size - min(tail, block_size - SECTOR))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    w = VhdWriter(
        size,
        block_size=block_size,
        max_table_entries=count + draw(st.sampled_from([0, 0, 3])),
        gap_sectors=draw(st.sampled_from([0, 0, 1, 3])),
        creator=draw(st.sampled_from([b"qem2", b"win "])),
    )
    chosen = [i for i in range(w.count) if rng.random() < 0.6]
    for index in chosen:
        style = draw(st.sampled_from(["full", "full", "runs", "random", "empty"]))
        fill = draw(st.sampled_from(["random", "short", "zeros"]))
        data = {
            "random": rng.randbytes(block_size),
            "short": rng.randbytes(rng.randrange(1, block_size)),
            "zeros": b"",
        }[fill]
        w[index] = Block(data, bitmap(rng, block_size // SECTOR, style))
    if draw(st.booleans()):
        rng.shuffle(chosen)
    w.order = chosen
    return w


def check_extents(img: object, w: VhdWriter) -> None:
    sectors = w.allocated_sectors()
    pos = 0
    for ext in img.extents():  # type: ignore[attr-defined]
        assert ext.offset == pos and ext.length > 0
        assert ext.kind in (DATA, UNALLOCATED)
        want = ext.kind == DATA
        lo, hi = ext.offset // SECTOR, (ext.offset + ext.length) // SECTOR
        assert all(s == want for s in sectors[lo:hi]), (ext, sectors[lo:hi])
        pos += ext.length
    assert pos == w.size


@SETTINGS
@given(w=layouts(), seed=st.integers(0, 2**16))
def test_dynamic_reads_and_converts(tmp_path: Path, w: VhdWriter, seed: int) -> None:
    path = tmp_path / "in.vhd"
    path.write_bytes(w.build().data)
    expected = w.expected()
    rng = random.Random(seed)
    with open_image(path) as img:
        assert img.format == "vhd" and img.virtual_size == w.size
        check_extents(img, w)
        for _ in range(20):
            off = rng.randrange(w.size)
            n = rng.randrange(0, w.size - off + 1)
            assert img.read(off, n) == expected[off : off + n]
        out = tmp_path / "out.raw"
        if out.exists():
            out.unlink()
        convert_image(img, out, ConvertOptions(workers=2))
    assert out.read_bytes() == expected


@SETTINGS
@given(
    sectors=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    creator=st.sampled_from([b"qem2", b"win ", b"d2v "]),
)
def test_fixed_reads_and_converts(tmp_path: Path, sectors: int, seed: int, creator: bytes) -> None:
    rng = random.Random(seed)
    w = VhdWriter(sectors * SECTOR, disk_type=FIXED, creator=creator)
    w.fixed_data = rng.randbytes(rng.randrange(sectors * SECTOR + 1))
    path = tmp_path / "in.vhd"
    path.write_bytes(w.build().data)
    with open_image(path) as img:
        assert img.virtual_size == w.size
        off = rng.randrange(w.size)
        assert img.read(off, w.size - off) == w.expected()[off:]
        out = tmp_path / "out.raw"
        if out.exists():
            out.unlink()
        convert_image(img, out)
    assert out.read_bytes() == w.expected()


def test_reads_split_inside_sectors(tmp_path: Path) -> None:
    """Reads that start and end inside a sector zero exactly the clear sectors' bytes."""
    rng = random.Random(7)
    w = VhdWriter(4 * 4096, block_size=4096)
    w[1] = Block(rng.randbytes(4096), [True, False, True, False, False, True, True, False])
    path = tmp_path / "in.vhd"
    path.write_bytes(w.build().data)
    expected = w.expected()
    with open_image(path) as img:
        for off in range(4096 - 300, 2 * 4096, 123):
            for n in (1, 100, 511, 512, 513, 2000, 4096):
                n = min(n, w.size - off)
                assert img.read(off, n) == expected[off : off + n], (off, n)


@pytest.mark.parametrize("entries", [1 << 16, 1 << 20])
def test_large_empty_bat_is_fast(tmp_path: Path, entries: int) -> None:
    """A BAT of a million unallocated entries is walked by runs, not entry by entry."""
    w = VhdWriter(entries * 4096, block_size=4096)
    w[entries - 1] = Block(b"last")
    path = tmp_path / "in.vhd"
    path.write_bytes(w.build().data)
    with open_image(path) as img:
        kinds = [(e.kind, e.length) for e in img.extents()]
        assert kinds == [(UNALLOCATED, (entries - 1) * 4096), (DATA, 4096)]
        assert img.read(w.size - 4096, 4) == b"last"


@pytest.mark.parametrize("fixed", [False, True])
def test_converts_while_downloading(tmp_path: Path, fixed: bool) -> None:
    from growing import convert_while_growing

    rng = random.Random(5)
    if fixed:
        w = VhdWriter(64 * 4096, disk_type=FIXED)
        w.fixed_data = rng.randbytes(40 * 4096)
    else:
        w = VhdWriter(64 * 4096, block_size=4096, order=[9, 3, 40, 0])
        for index in (0, 3, 9, 40):
            w[index] = Block(rng.randbytes(4096), bitmap(rng, 8, "runs"))
    assert convert_while_growing(bytes(w.build().data), tmp_path, ".vhd", 4096) == w.expected()
