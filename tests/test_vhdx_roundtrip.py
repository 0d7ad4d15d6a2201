"""Property tests: random VHDX layouts made by tests/vhdxwriter.py (block sizes, logical
sectors, every payload state, blocks placed in any order with gaps, odd virtual sizes, logs that
rewrite BAT entries and sectors) read back, at random offsets and through the converter, as
exactly the bytes the writer meant, and extents() covers the disk once with the right kinds.
"""

from __future__ import annotations

import random
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Dict, List, Tuple, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vhdxwriter import (
    FULLY_PRESENT,
    NOT_PRESENT,
    UNDEFINED,
    UNMAPPED,
    ZERO,
    LogEntry,
    VhdxWriter,
    bat_sector_with,
)

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.vhdx import open_image

MiB = 1 << 20
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KIND = {FULLY_PRESENT: "data", ZERO: "zero", UNMAPPED: "zero", NOT_PRESENT: "unallocated",
        UNDEFINED: "unallocated"}  # fmt: skip


@st.composite
def layouts(draw: st.DrawFn) -> Tuple[VhdxWriter, int]:
    bs = draw(st.sampled_from([MiB, 2 * MiB]))
    sector = draw(st.sampled_from([512, 4096]))
    blocks = draw(st.integers(1, 7))
    tail = draw(st.integers(0, bs // sector - 1)) * sector
    size = (blocks - 1) * bs + (tail or bs)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    w = VhdxWriter(size, block_size=bs, logical_sector_size=sector, physical_sector_size=4096)
    for block in range(w.blocks):
        state = draw(st.sampled_from([FULLY_PRESENT, FULLY_PRESENT, ZERO, UNMAPPED, NOT_PRESENT,
                                      UNDEFINED]))  # fmt: skip
        if state == FULLY_PRESENT:
            length = min(bs, size - block * bs)
            w.data(block, rng.randbytes(min(length, draw(st.sampled_from([length, 4096, 1])))))
        else:
            w.state(block, state)
    order = sorted(w.contents)
    rng.shuffle(order)
    w.order = order
    w.gap_mib = draw(st.integers(0, 2))
    return w, seed


def expected_kinds(w: VhdxWriter) -> List[Tuple[int, int, str]]:
    runs: List[Tuple[int, int, str]] = []
    for block in range(w.blocks):
        kind = KIND[w.states.get(block, NOT_PRESENT)]
        start, end = block * w.block_size, min(w.virtual_size, (block + 1) * w.block_size)
        if runs and runs[-1][2] == kind:
            runs[-1] = (runs[-1][0], end - runs[-1][0], kind)
        else:
            runs.append((start, end - start, kind))
    return runs


def check(path: Path, expected: bytes, seed: int) -> None:
    rng = random.Random(seed)
    with open_image(path) as img:
        assert img.virtual_size == len(expected)
        for _ in range(20):
            off = rng.randrange(len(expected))
            n = rng.randrange(1, min(len(expected) - off, 3 * MiB) + 1)
            assert img.read(off, n) == expected[off : off + n], (off, n)
        out = path.with_suffix(".raw")
        convert_image(img, out, ConvertOptions(workers=2))
        assert out.read_bytes() == expected
        out.unlink()


@SETTINGS
@given(layouts())
def test_random_layouts_roundtrip(layout: Tuple[VhdxWriter, int]) -> None:
    w, seed = layout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.vhdx"
        path.write_bytes(w.build())
        with open_image(path) as img:
            assert [tuple(e) for e in img.extents()] == expected_kinds(w)
        check(path, w.expected(), seed)


@SETTINGS
@given(layouts(), st.data())
def test_random_logs_replay(layout: Tuple[VhdxWriter, int], data: st.DataObject) -> None:
    """Log entries that map or unmap blocks and rewrite or zero sectors of present blocks:
    what the image reads is the writer's contents with the log applied in sequence order."""
    w, seed = layout
    rng = random.Random(seed ^ 0x5A5A)
    base = w.build()
    lay = w.layout
    expected = bytearray(w.expected())
    present = sorted(lay.block_offsets)
    entries: List[LogEntry] = []
    image = bytearray(base)
    for seq in range(100, 100 + data.draw(st.integers(1, 4))):
        writes: List[Tuple[int, Union[bytes, int]]] = []
        for _ in range(data.draw(st.integers(1, 3))):
            if present and rng.random() < 0.6:
                block = rng.choice(present)
                within = (
                    rng.randrange(
                        0, max(1, min(w.block_size, w.virtual_size - block * w.block_size) // 4096)
                    )
                    * 4096
                )
                host, guest = lay.block_offsets[block] + within, block * w.block_size + within
                if guest >= w.virtual_size:
                    continue
                if rng.random() < 0.5:
                    sector = rng.randbytes(4096)
                    writes.append((host, sector))
                    image[host : host + 4096] = sector
                else:
                    writes.append((host, 8192))
                    image[host : host + 8192] = bytes(8192)
                visible = min(len(expected), guest + 8192) - guest
                expected[guest : guest + visible] = image[host : host + visible]
            else:  # unmap a block through its BAT sector
                block = rng.randrange(w.blocks)
                at, sector = bat_sector_with(bytes(image), lay, block, ZERO)
                writes.append((at, sector))
                image[at : at + 4096] = sector
                start = block * w.block_size
                end = min(len(expected), start + w.block_size)
                expected[start:end] = bytes(end - start)
                if block in present:
                    present.remove(block)
        if writes:
            entries.append(LogEntry(seq, writes))
    if not entries:
        return
    w.log_guid = uuid.uuid4().bytes_le
    w.log_entries = entries
    w.log_start = data.draw(st.sampled_from([0, 4096 * 3]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.vhdx"
        path.write_bytes(w.build())
        check(path, bytes(expected), seed)


def test_concurrent_reads_agree() -> None:
    w = VhdxWriter(16 * MiB, block_size=MiB)
    rng = random.Random(9)
    for block in range(0, 16, 2):
        w.data(block, rng.randbytes(MiB))
    expected = w.expected()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.vhdx"
        path.write_bytes(w.build())
        errors: Dict[int, str] = {}
        with open_image(path) as img:

            def worker(n: int) -> None:
                r = random.Random(n)
                for _ in range(50):
                    off = r.randrange(len(expected) - 4096)
                    if img.read(off, 4096) != expected[off : off + 4096]:
                        errors[n] = f"mismatch at {off}"

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors


def test_reads_a_download_still_arriving(tmp_path: Path) -> None:
    """Through a GrowingFile: open waits for the metadata it reads, convert for each block."""
    from pyimagecache.sourcefile import GrowingFile

    w = VhdxWriter(6 * MiB, block_size=MiB)
    rng = random.Random(11)
    for block in (0, 3, 5):
        w.data(block, rng.randbytes(MiB))
    data = w.build()
    path = tmp_path / "partial.vhdx"
    path.write_bytes(b"")
    growing = GrowingFile(path, len(data))

    def download() -> None:
        with open(path, "r+b") as f:
            for pos in range(0, len(data), 256 << 10):
                f.write(data[pos : pos + (256 << 10)])
                f.flush()
                growing.grew(min(len(data), pos + (256 << 10)))
        growing.finish()

    feeder = threading.Thread(target=download)
    feeder.start()
    try:
        with open_image(growing) as img:
            out = tmp_path / "out.raw"
            convert_image(img, out, ConvertOptions(workers=2, measure=False))
    finally:
        feeder.join()
    assert out.read_bytes() == w.expected()
