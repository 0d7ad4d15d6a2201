"""Property tests: static and dynamic VDIs from tests/vdiwriter.py read and convert back byte
for byte, with random block layouts (host order, discarded blocks, odd disk sizes)."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vdiwriter import BLOCK, DYNAMIC, STATIC, ZERO, VdiWriter

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.diskimage import DATA, UNALLOCATED
from pyimagecache.diskimage import ZERO as ZERO_KIND
from pyimagecache.opener import open_image

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def layouts(draw: st.DrawFn) -> VdiWriter:
    count = draw(st.integers(1, 6))
    tail = draw(st.sampled_from([0, 0, 1, 511, 512, BLOCK // 2, BLOCK - 1]))
    size = max(1, count * BLOCK - tail)
    kind = draw(st.sampled_from([DYNAMIC, DYNAMIC, STATIC]))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    w = VdiWriter(size, image_type=kind, extra_blocks=draw(st.sampled_from([0, 0, 2])))
    for index in range(w.count):
        pick = rng.random()
        if pick < 0.4:
            w[index] = rng.randbytes(rng.choice([1, 4096, 100_000, BLOCK]))
        elif pick < 0.55 and kind == DYNAMIC:
            w[index] = ZERO
        elif pick < 0.65:
            w[index] = bytes(4096) + rng.randbytes(512)
    if kind == DYNAMIC and draw(st.booleans()):
        stored = [i for i, c in w.blocks.items() if isinstance(c, bytes)]
        rng.shuffle(stored)
        w.order = stored
    return w


@SETTINGS
@given(w=layouts(), seed=st.integers(0, 2**16))
def test_reads_and_converts(tmp_path: Path, w: VdiWriter, seed: int) -> None:
    path = tmp_path / "in.vdi"
    path.write_bytes(w.build().data)
    expected = w.expected()
    size = w.virtual_size
    rng = random.Random(seed)
    with open_image(path) as img:
        assert img.format == "vdi" and img.virtual_size == size
        pos = 0
        for ext in img.extents():
            assert ext.offset == pos and ext.length > 0
            for block in range(ext.offset // BLOCK, -(-(ext.offset + ext.length) // BLOCK)):
                content = w.blocks.get(block)
                want = UNALLOCATED if content is None else ZERO_KIND if content is ZERO else DATA
                assert ext.kind == want
            pos += ext.length
        assert pos == size
        for _ in range(15):
            off = rng.randrange(size)
            n = rng.randrange(0, min(size - off, 3 * BLOCK) + 1)
            assert img.read(off, n) == expected[off : off + n]
        out = tmp_path / "out.raw"
        if out.exists():
            out.unlink()
        convert_image(img, out, ConvertOptions(workers=2))
    assert out.read_bytes() == expected


def test_converts_while_downloading(tmp_path: Path) -> None:
    from growing import convert_while_growing

    rng = random.Random(5)
    w = VdiWriter(6 * BLOCK + 512, order=[5, 1, 2])
    for index in (1, 2, 5):
        w[index] = rng.randbytes(BLOCK // 3)
    w[3] = ZERO
    assert convert_while_growing(bytes(w.build().data), tmp_path, ".vdi") == w.expected()
