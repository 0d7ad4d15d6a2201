"""Differential tests for the VHDX reader: images made by qemu-img/qemu-io (dynamic and fixed,
block and log sizes, writes, zero writes, discards, odd sizes, a sparse disk over 4 GiB) and by
tests/vhdxwriter.py (4096-byte logical sectors, every BAT state, logs) convert to exactly
what ``qemu-img convert -O raw`` gives, allocating no more than it plus one block, and
``describe()`` agrees with ``qemu-img info --output=json``. An image with a log is compared
with what qemu reads after replaying the log into a copy (``qemu-img check -r all``).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, List, Sequence, Tuple, Union

import pytest
from conftest import require_tool
from test_qcow2_qemu import data_blocks, qemu_info, run, source_raw
from vhdxwriter import (
    FULLY_PRESENT,
    UNDEFINED,
    UNMAPPED,
    ZERO,
    LogEntry,
    VhdxWriter,
    bat_sector_with,
)

from pyimagecache.converter import convert
from pyimagecache.opener import info
from pyimagecache.vhdx import open_image

pytestmark = pytest.mark.qemu
MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    require_tool("qemu-img")
    require_tool("qemu-io")


def same_files(a: Path, b: Path) -> None:
    proc = subprocess.run(["cmp", str(a), str(b)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def differential(image: Path, tmp_path: Path, reference: Path = None) -> Path:  # type: ignore[assignment]
    """Convert ``image`` with both tools (qemu from ``reference``, a copy with its log
    replayed, when given) and compare bytes and allocation; returns our output."""
    ref, ours = tmp_path / "qemu.raw", tmp_path / "ours.raw"
    for p in (ref, ours):
        if p.exists():
            p.unlink()
    run("qemu-img", "convert", "-O", "raw", str(reference or image), str(ref))
    convert(image, ours)
    assert os.path.getsize(ours) == os.path.getsize(ref)
    same_files(ours, ref)
    with open_image(image) as img:
        block = img.block_size
        if img.virtual_size <= 64 * MiB:
            assert img.read(0, img.virtual_size) == ref.read_bytes()
    fd = os.open(ref, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fs_block = os.stat(ours).st_blksize
    extra = data_blocks(ours, fs_block) - data_blocks(ref, fs_block)
    assert len(extra) * fs_block <= block, sorted(extra)[:10]
    ours_alloc, ref_alloc = os.stat(ours).st_blocks * 512, os.stat(ref).st_blocks * 512
    assert ours_alloc <= ref_alloc + block, (ours_alloc, ref_alloc)
    return ours


def compare_info(image: Path) -> None:
    ref = qemu_info(image)
    with open_image(image) as img:
        ours = img.describe()
        allocation = img.allocation()
    assert ours == ref
    assert sum(allocation.values()) == ref["virtual-size"]
    ours_info = info(image)
    assert ours_info["allocation"] == allocation
    assert {k: v for k, v in ours_info.items() if k != "allocation"} == ref


def qemu_io(image: Path, cmds: Sequence[str]) -> None:
    args = ["qemu-io", "-f", "vhdx"]
    for c in cmds:
        args += ["-c", c]
    run(*args, str(image))


@pytest.mark.parametrize(
    "opts",
    [
        "subformat=dynamic",
        "subformat=fixed",
        "subformat=dynamic,block_size=1M",
        "subformat=dynamic,block_size=32M",
        "subformat=dynamic,block_size=256M",
        "subformat=fixed,block_size=2M",
        "subformat=dynamic,log_size=4M",
        "subformat=dynamic,block_size=1M,log_size=2M",
        "subformat=dynamic,block_state_zero=off",
    ],
)
def test_convert_from_raw(tmp_path: Path, opts: str) -> None:
    raw = source_raw(tmp_path / "src.raw", 40 * MiB + 512 * 7, seed=len(opts))
    image = tmp_path / "img.vhdx"
    run("qemu-img", "convert", "-O", "vhdx", "-o", opts, str(raw), str(image))
    out = differential(image, tmp_path)
    same_files(out, raw)
    compare_info(image)


WRITES = [
    "write -P 0x11 0 64k",
    "write -P 0x22 100k 3k",
    "write -P 0xab 1M 64k",
    "write -z 2M 1M",
    "discard 3M 64k",
    "write -P 0x00 5M 64k",
    "write -P 0x44 9M 2M",
    "write -z 9M 1M",
    "discard 10M 1M",
    "write -P 0x55 15M 512",
]


@pytest.mark.parametrize(
    "opts", ["subformat=dynamic", "subformat=fixed", "block_size=1M", "block_size=4M,log_size=1M"]
)
def test_qemu_io_writes(tmp_path: Path, opts: str) -> None:
    image = tmp_path / "w.vhdx"
    run("qemu-img", "create", "-q", "-f", "vhdx", "-o", opts, str(image), str(16 * MiB))
    qemu_io(image, WRITES)
    differential(image, tmp_path)
    compare_info(image)


@pytest.mark.parametrize("size", [3 * MiB + 512, MiB + 1536, 33 * MiB - 512, 512])
def test_odd_virtual_sizes(tmp_path: Path, size: int) -> None:
    image = tmp_path / "odd.vhdx"
    run("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", str(image), str(size))
    qemu_io(image, ["write -P 0x5a 0 512", f"write -P 0x6b {size - 512} 512"])
    out = differential(image, tmp_path)
    assert os.path.getsize(out) == size
    compare_info(image)


def test_sparse_image_over_4_gib(tmp_path: Path) -> None:
    size = 5 * GiB + 3 * MiB
    image = tmp_path / "big.vhdx"
    run("qemu-img", "create", "-q", "-f", "vhdx", str(image), str(size))
    qemu_io(image, [
        "write -P 0x01 0 1M",
        f"write -P 0x02 {4 * GiB - 4096} 8k",
        f"write -P 0x03 {4 * GiB + 100 * MiB} 64k",
        f"write -P 0x04 {size - 4096} 4096",
    ])  # fmt: skip
    differential(image, tmp_path)
    compare_info(image)
    with open_image(image) as img:
        assert img.read(4 * GiB - 4096, 8192) == b"\x02" * 8192


# -- writer-made images: qemu must agree with the writer and with us -----------------------------


def writer_image(seed: int, **kwargs: Any) -> VhdxWriter:
    rng = random.Random(seed)
    bs = kwargs.pop("block_size", MiB)
    size = kwargs.pop("size", 9 * bs + 4096)
    w = VhdxWriter(size, block_size=bs, **kwargs)
    for block in range(w.blocks):
        pick = rng.randrange(6)
        if pick < 3:
            w.data(block, rng.randbytes(min(bs, size - block * bs)))
        else:
            w.state(block, [ZERO, UNMAPPED, UNDEFINED][pick - 3])
    order = sorted(w.contents)
    rng.shuffle(order)
    w.order = order
    return w


@pytest.mark.parametrize("physical", [512, 4096])
def test_writer_images_agree_with_qemu(tmp_path: Path, physical: int) -> None:
    w = writer_image(physical, physical_sector_size=physical)
    image = tmp_path / "w.vhdx"
    image.write_bytes(w.build())
    assert "No errors" in run("qemu-img", "check", str(image))
    out = differential(image, tmp_path)
    assert out.read_bytes() == w.expected()
    compare_info(image)


def test_4096_byte_logical_sectors(tmp_path: Path) -> None:
    """qemu 7.2 neither makes nor opens them ("Operation not supported"); [MS-VHDX] allows
    them, and only the chunk ratio changes: compare with the writer's contents instead."""
    w = writer_image(7, logical_sector_size=4096, size=5 * MiB + 8192)
    image = tmp_path / "w4k.vhdx"
    image.write_bytes(w.build())
    proc = subprocess.run(["qemu-img", "info", str(image)], capture_output=True, text=True)
    assert proc.returncode != 0
    out = tmp_path / "ours.raw"
    convert(image, out)
    assert out.read_bytes() == w.expected()
    with open_image(image) as img:
        assert img.logical_sector_size == 4096 and img.bat.chunk_ratio == 32768


def test_fixed_writer_image(tmp_path: Path) -> None:
    w = VhdxWriter(6 * MiB, block_size=2 * MiB, fixed=True)
    w.data(1, b"\x77" * (2 * MiB))
    image = tmp_path / "f.vhdx"
    image.write_bytes(w.build())
    differential(image, tmp_path)
    compare_info(image)


def logged_image(tmp_path: Path, seed: int, wrap: bool, split: bool = True) -> Path:
    """An image whose log holds what a crash left: block 1's BAT entry and a metadata-ish
    overwrite of block 0's first sectors exist only in the log. ``split``: in two entries
    (a sequence), else one; ``wrap``: the log's data crosses the end of the circular log."""
    rng = random.Random(seed)
    w = VhdxWriter(4 * MiB, block_size=MiB)
    w.data(0, rng.randbytes(MiB))
    w.data(1, rng.randbytes(MiB))
    base = w.build()
    lay = w.layout
    w.raw_entries[1] = 0
    w.log_guid = uuid.uuid4().bytes_le
    sector, data = bat_sector_with(
        base, lay, 1, FULLY_PRESENT | (lay.block_offsets[1] // MiB) << 20
    )
    b0 = lay.block_offsets[0]
    if wrap:
        w.log_start = MiB - 4096  # an entry's sectors continue at the start of the log
    first: List[Tuple[int, Union[bytes, int]]] = [(sector, data)]
    second: List[Tuple[int, Union[bytes, int]]] = [
        (b0, rng.randbytes(4096)), (b0 + 8192, 3 * 4096), (b0 + 4096, b"L" * 4096)
    ]  # fmt: skip
    if split:
        w.log_entries = [LogEntry(41, first), LogEntry(42, second)]
    else:
        w.log_entries = [LogEntry(41, first + second)]
    image = tmp_path / f"log-{seed}.vhdx"
    image.write_bytes(w.build())
    return image


@pytest.mark.parametrize(("wrap", "split"), [(False, False), (False, True), (True, False)], ids=str)
def test_log_replay_matches_qemu_check_repair(tmp_path: Path, wrap: bool, split: bool) -> None:
    image = logged_image(tmp_path, 3, wrap, split)
    copy = tmp_path / "replayed.vhdx"
    shutil.copy(image, copy)
    proc = subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(tmp_path / "x")],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and "log" in proc.stderr  # qemu needs the log replayed first
    run("qemu-img", "check", "-r", "all", str(copy))
    before = image.read_bytes()
    differential(image, tmp_path, reference=copy)
    assert image.read_bytes() == before  # replayed in memory, never written
    with open_image(image) as img:
        assert img.log_replayed
        assert img.describe()["virtual-size"] == qemu_info(copy)["virtual-size"]


def test_log_sequence_across_the_wrap_follows_the_specification(tmp_path: Path) -> None:
    """Entries 41 (at the end of the log) and 42 (wrapped to its start, Tail -> 41) form the
    active sequence ([MS-VHDX] 2.3.3), so both are replayed. qemu 7.2's vhdx_log_search ranks
    sequences by their first entry and scans from log offset 0, so it replays 42 alone and
    loses 41's BAT update: here we follow the specification, not qemu."""
    image = logged_image(tmp_path, 4, wrap=True, split=True)
    copy = tmp_path / "replayed.vhdx"
    shutil.copy(image, copy)
    run("qemu-img", "check", "-r", "all", str(copy))
    ref = tmp_path / "qemu.raw"
    run("qemu-img", "convert", "-O", "raw", str(copy), str(ref))
    with open_image(image) as img:
        assert [(e.offset, e.length, e.kind) for e in img.extents()] == [
            (0, 2 * MiB, "data"), (2 * MiB, 2 * MiB, "unallocated")
        ]  # fmt: skip
        block0 = img.read(0, MiB)
        assert block0[4096:8192] == b"L" * 4096 and block0[8192 : 5 * 4096] == bytes(3 * 4096)
        assert block0 == ref.read_bytes()[:MiB]  # entry 42: both replay it
