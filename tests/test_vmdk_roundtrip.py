"""Property tests: extents from tests/vmdkwriter.py read (at random offsets) and convert back
byte for byte, monolithicSparse and streamOptimized, and through descriptors that concatenate
several of them with flat and zero extents.

Layouts and contents are drawn by hypothesis (small examples); the writer knows every byte.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vmdkwriter import SECTOR, ZERO_GRAIN, VmdkWriter, descriptor_text

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.diskimage import KINDS
from pyimagecache.sourcefile import GrowingFile, SourceFile
from pyimagecache.vmdk import open_image

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def payload(rng: random.Random, size: int, style: str) -> bytes:
    if style == "random":
        return rng.randbytes(size)
    if style == "holes":
        out = bytearray(rng.randbytes(size))
        for block in range(0, size, 4096):
            if rng.random() < 0.5:
                out[block : block + 4096] = bytes(min(4096, size - block))
        return bytes(out)
    if style == "short":
        return rng.randbytes(rng.randrange(1, max(2, size // 7)))
    if style == "zeros":
        return bytes(size)
    return bytes([rng.randrange(256)]) * (size // 2) + rng.randbytes(min(8, size - size // 2))


@st.composite
def writers(draw: st.DrawFn, stream: bool) -> VmdkWriter:
    grain_sectors = draw(st.sampled_from([1, 8, 16, 128]))
    gtes = draw(st.sampled_from([4, 16, 512]))
    grain = grain_sectors * SECTOR
    n = draw(st.integers(1, 40))
    tail = draw(st.sampled_from([0, 0, SECTOR, grain // 2]))
    size = max(SECTOR, n * grain - min(tail, grain - SECTOR) // SECTOR * SECTOR)
    w = VmdkWriter(
        size,
        grain_sectors=grain_sectors,
        gtes_per_gt=gtes,
        stream=stream,
        gd_at_end=draw(st.booleans()),
        zero_grain=not stream and draw(st.booleans()),
        rgd=draw(st.booleans()),
        shuffle=draw(st.one_of(st.none(), st.integers(0, 1000))),
        level=draw(st.sampled_from([1, 6, 9])),
        descriptor=draw(st.booleans()),
    )
    rng = random.Random(draw(st.integers(0, 2**32)))
    kinds = ["none", "data", "data"] + (["zero"] if w.zero_grain else [])
    for g in range(w.nb_grains):
        kind = draw(st.sampled_from(kinds))
        if kind == "data":
            style = draw(st.sampled_from(["random", "holes", "short", "zeros", "repeat"]))
            w[g] = payload(rng, w.grain_length(g), style)
        elif kind == "zero":
            w[g] = ZERO_GRAIN
    return w


def check_image(path: Path, expected: bytes, tmp_path: Path, rng: random.Random) -> None:
    # The reader itself: opener.open_image fails on files under 512 bytes (see
    # test_vmdk_malformed.test_small_descriptor_through_opener).
    with open_image(SourceFile.open(path)) as img:
        assert img.virtual_size == len(expected)
        pos = 0
        for extent in img.extents():
            assert extent.offset == pos and extent.length > 0 and extent.kind in KINDS
            pos += extent.length
        assert pos == len(expected)
        for _ in range(8):
            off = rng.randrange(len(expected))
            length = rng.randrange(1, len(expected) - off + 1)
            assert img.read(off, length) == expected[off : off + length], (off, length)
        out = tmp_path / "out.raw"
        if out.exists():
            out.unlink()
        convert_image(img, out, ConvertOptions(workers=2))
    assert out.read_bytes() == expected


@SETTINGS
@given(w=st.booleans().flatmap(lambda stream: writers(stream=stream)), seed=st.integers(0, 2**32))
def test_sparse_and_stream_roundtrip(tmp_path: Path, w: VmdkWriter, seed: int) -> None:
    """monolithicSparse and streamOptimized extents, drawn alike."""
    path = tmp_path / "s.vmdk"
    w.build().save(path)
    check_image(path, w.expected(), tmp_path, random.Random(seed))


@SETTINGS
@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(["sparse", "stream", "flat", "vmfs", "zero"]),
            st.integers(1, 24),
            st.integers(0, 2**32),
        ),
        min_size=1,
        max_size=5,
    ),
    seed=st.integers(0, 2**32),
)
def test_descriptor_concatenates_extents(
    tmp_path: Path, parts: List[Tuple[str, int, int]], seed: int
) -> None:
    lines, expected = [], bytearray()
    for i, (kind, sectors, pseed) in enumerate(parts):
        rng = random.Random(pseed)
        size = sectors * SECTOR
        if kind == "zero":
            lines.append(f"RW {sectors} ZERO")
            expected += bytes(size)
            continue
        name = f"e{i}.vmdk"
        if kind in ("flat", "vmfs"):
            offset = rng.randrange(4) if kind == "flat" else 0
            data = rng.randbytes(size - rng.choice([0, 0, SECTOR]))  # may end short: zeros
            (tmp_path / name).write_bytes(bytes(offset * SECTOR) + data)
            lines.append(
                f'RW {sectors} FLAT "{name}" {offset}' if kind == "flat"
                else f'RW {sectors} VMFS "{name}"'
            )  # fmt: skip
            expected += data + bytes(size - len(data))
            continue
        w = VmdkWriter(size, grain_sectors=8, gtes_per_gt=4, stream=kind == "stream")
        for g in range(w.nb_grains):
            if rng.random() < 0.7:
                w[g] = rng.randbytes(w.grain_length(g))
        w.build().save(tmp_path / name)
        lines.append(f'RDONLY {sectors} SPARSE "{name}"')
        expected += w.expected()
    (tmp_path / "d.vmdk").write_bytes(descriptor_text("twoGbMaxExtentSparse", lines))
    check_image(tmp_path / "d.vmdk", bytes(expected), tmp_path, random.Random(seed))


@pytest.mark.parametrize("gd_at_end", [False, True])
def test_growing_file(tmp_path: Path, gd_at_end: bool) -> None:
    """A download still arriving: a qemu-layout stream converts as it grows; a VMware-layout
    one (gdOffset GD_AT_END) waits for its footer at the end of the file, then converts."""
    w = VmdkWriter(64 * 4096, grain_sectors=8, gtes_per_gt=16, stream=True, gd_at_end=gd_at_end)
    rng = random.Random(4)
    for g in range(0, w.nb_grains, 3):
        w[g] = rng.randbytes(4096)
    data = w.build().bytes()
    path = tmp_path / "part.vmdk"
    with open(path, "wb") as f:
        f.write(data[:4096])
    src = GrowingFile(path, len(data), written=4096)
    out = tmp_path / "out.raw"
    done: List[BaseException] = []

    def run() -> None:
        try:
            with open_image(src) as img:
                convert_image(img, out, ConvertOptions(workers=2, measure=False))
        except BaseException as exc:  # handed to the test thread
            done.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    with open(path, "r+b") as f:
        for pos in range(4096, len(data), 8192):
            time.sleep(0.002)
            f.seek(pos)
            f.write(data[pos : pos + 8192])
            f.flush()
            src.grew(min(len(data), pos + 8192))
    src.finish()
    thread.join(10)
    assert not thread.is_alive() and not done, done
    assert out.read_bytes() == w.expected()
