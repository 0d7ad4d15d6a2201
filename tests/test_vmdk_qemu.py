"""Differential tests: VMDKs made by qemu-img/qemu-io convert to exactly what
``qemu-img convert -O raw`` gives, allocating no more than it plus one grain, and ``describe()``
agrees with ``qemu-img info --output=json``. Also checks that qemu reads what
tests/vmdkwriter.py writes the way the writer says, so the writer-based suites test real VMDK.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path
from typing import Sequence

import diskdiff
import pytest
from conftest import require_tool
from diskdiff import data_blocks, run
from test_qcow2_qemu import qemu_info  # qemu-img info as it probes the format
from vmdkwriter import ZERO_GRAIN, VmdkWriter

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.opener import image_info, open_image

pytestmark = pytest.mark.qemu
MiB = 1 << 20
GiB = 1 << 30
SUBFORMATS = [
    "monolithicSparse",
    "streamOptimized",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
]


@pytest.fixture(scope="module")
def qemu_img() -> str:
    return require_tool("qemu-img")


@pytest.fixture(scope="module")
def qemu_io() -> str:
    return require_tool("qemu-io")


def source_raw(path: Path, size: int, seed: int = 0) -> Path:
    return diskdiff.source_raw(path, size, seed, largest=200_000)


def make_vmdk(raw: Path, out: Path, subformat: str, *opts: str) -> Path:
    o = ",".join([f"subformat={subformat}", *opts])
    run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", o, str(raw), str(out))
    return out


def same_files(a: Path, b: Path) -> None:
    """Byte for byte, a chunk at a time (outputs may be several GiB)."""
    assert a.stat().st_size == b.stat().st_size
    with open(a, "rb") as fa, open(b, "rb") as fb:
        pos = 0
        while True:
            x, y = fa.read(4 * MiB), fb.read(4 * MiB)
            if x != y:
                bad = next(i for i in range(min(len(x), len(y))) if x[i] != y[i])
                pytest.fail(f"{a.name} and {b.name} differ at byte {pos + bad:#x}")
            if not x:
                return
            pos += len(x)


def differential(image: Path, tmp_path: Path, check_read: bool = True) -> None:
    """Convert with both tools; compare bytes and allocation (ours <= qemu's + one grain)."""
    ref, ours = tmp_path / "qemu.raw", tmp_path / "ours.raw"
    for p in (ref, ours):
        if p.exists():
            p.unlink()
    run("qemu-img", "convert", "-O", "raw", str(image), str(ref))
    with open_image(image) as img:
        convert_image(img, ours, ConvertOptions(workers=2, sync=True))
        grain = img.describe().get("cluster-size", 65536)
        if check_read and img.virtual_size <= 64 * MiB:
            assert img.read(0, img.virtual_size) == ref.read_bytes()
    same_files(ours, ref)
    fd = os.open(ref, os.O_RDONLY)
    try:
        os.fsync(fd)  # settle qemu's delayed allocation before comparing st_blocks
    finally:
        os.close(fd)
    block = os.stat(ours).st_blksize
    extra = data_blocks(ours, block) - data_blocks(ref, block)
    assert len(extra) * block <= max(grain, block), sorted(extra)[:10]
    ours_alloc, ref_alloc = os.stat(ours).st_blocks * 512, os.stat(ref).st_blocks * 512
    assert ours_alloc <= ref_alloc + max(grain, block), (ours_alloc, ref_alloc)


def compare_info(image: Path) -> None:
    ref = qemu_info(image)
    with open_image(image) as img:
        ours = image_info(img)
    for key in ("virtual-size", "filename", "format", "actual-size", "dirty-flag"):
        assert ours[key] == ref[key], key
    assert ours.get("cluster-size") == ref.get("cluster-size")
    assert ours["format-specific"] == ref["format-specific"]
    assert sum(ours["allocation"].values()) == ref["virtual-size"]


@pytest.mark.parametrize("subformat", SUBFORMATS)
@pytest.mark.parametrize("size", [5 * MiB, 3 * MiB + 512, 64 * 1024 * 7 - 1536])
def test_convert_subformats(qemu_img: str, tmp_path: Path, subformat: str, size: int) -> None:
    raw = source_raw(tmp_path / "src.raw", size, seed=size % 97)
    image = make_vmdk(raw, tmp_path / "d.vmdk", subformat)
    differential(image, tmp_path)
    assert (tmp_path / "ours.raw").read_bytes() == raw.read_bytes()
    compare_info(image)


@pytest.mark.parametrize("subformat", ["monolithicSparse", "twoGbMaxExtentSparse"])
@pytest.mark.parametrize("zeroed", [False, True])
def test_qemu_io_writes(
    qemu_img: str, qemu_io: str, tmp_path: Path, subformat: str, zeroed: bool
) -> None:
    raw = source_raw(tmp_path / "src.raw", 6 * MiB, seed=3)
    opts = ["zeroed_grain=on"] if zeroed else []
    image = make_vmdk(raw, tmp_path / "w.vmdk", subformat, *opts)
    cmds = [
        "write -P 0xab 1M 64k",
        "write -P 0x11 100k 3k",
        "write -P 0x00 1536k 64k",  # explicit zeros written as data
        "write -P 0xcd 6143k 1k",
        "discard 3M 64k",  # vmdk has no discard: the data stays
        "write -z 100k 4k",  # part of a grain: qemu writes zeros as data
    ]
    # whole grains: zero grains with the zeroed-grain flag, else zeros written as data
    cmds += ["write -z 2M 1M", "write -z 4M 64k"]
    args = ["qemu-io", "-f", "vmdk"]
    for c in cmds:
        args += ["-c", c]
    run(*args, str(image))
    differential(image, tmp_path)
    compare_info(image)


def test_qemu_created_empty_then_written(qemu_img: str, qemu_io: str, tmp_path: Path) -> None:
    image = tmp_path / "e.vmdk"
    run("qemu-img", "create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", str(image), "4M")
    run("qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 0 1M", "-c", "write -z 1M 1M",
        "-c", "write -P 0x6b 3M 4k", str(image))  # fmt: skip
    differential(image, tmp_path)
    compare_info(image)
    with open_image(image) as img:
        kinds = {e.kind for e in img.extents()}
    assert {"data", "zero", "unallocated"} <= kinds


@pytest.mark.slow
@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized",
                                       "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])  # fmt: skip
def test_over_4gib(qemu_img: str, tmp_path: Path, subformat: str) -> None:
    """A sparse 5 GiB disk with data near 0, around 2 and 4 GiB and at its end (several
    extents for twoGbMaxExtent*, 32-bit sector offsets past 4 GiB)."""
    size = 5 * GiB + 512
    raw = tmp_path / "big.raw"
    rng = random.Random(7)
    with open(raw, "wb") as f:
        f.truncate(size)
        for at in (0, 2 * GiB - 4096, 4 * GiB + 12345, size - 700):
            f.seek(at)
            f.write(rng.randbytes(min(700, size - at) if at > size - 1000 else 200_000))
    image = make_vmdk(raw, tmp_path / "big.vmdk", subformat)
    raw.unlink()
    differential(image, tmp_path, check_read=False)
    compare_info(image)


def test_describe_paths(qemu_img: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extent file names print as qemu prints them: the descriptor's directory + the name."""
    sub = tmp_path / "sub"
    sub.mkdir()
    raw = source_raw(tmp_path / "src.raw", 2 * MiB, seed=1)
    make_vmdk(raw, sub / "f.vmdk", "twoGbMaxExtentFlat")
    monkeypatch.chdir(tmp_path)
    for name in ("sub/f.vmdk", str(sub / "f.vmdk")):
        compare_info(Path(name))


# -- the writer's output is VMDK that qemu reads as the writer says ------------------------


def writer_shapes() -> Sequence[VmdkWriter]:
    rng = random.Random(12)
    shapes = []
    for kw in [
        {},
        {"zero_grain": True, "shuffle": 1},
        {"rgd": False, "grain_sectors": 8, "gtes_per_gt": 64},
        {"stream": True},
        {"stream": True, "gd_at_end": False},
        {"stream": True, "shuffle": 2, "grain_sectors": 16, "gtes_per_gt": 32},
    ]:
        w = VmdkWriter(70 * 8192 + 1024, **kw)  # type: ignore[arg-type]
        n = w.nb_grains
        for i in rng.sample(range(n - 1), n // 2):
            style = rng.random()
            length = w.grain_length(i)
            if style < 0.4:
                w[i] = rng.randbytes(length)
            elif style < 0.7:
                w[i] = (b"text %d " % i * length)[:length]
            elif w.zero_grain:
                w[i] = ZERO_GRAIN
            else:
                w[i] = bytes(length)
        w[n - 1] = rng.randbytes(w.grain_length(n - 1))
        shapes.append(w)
    return shapes


@pytest.mark.parametrize("w", writer_shapes(), ids=lambda w: f"s{int(w.stream)}-g{w.grain}")
def test_qemu_reads_writer_output(qemu_img: str, tmp_path: Path, w: VmdkWriter) -> None:
    built = w.build()
    path = tmp_path / "w.vmdk"
    built.save(path)
    proc = subprocess.run(["qemu-img", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ref = tmp_path / "ref.raw"
    run("qemu-img", "convert", "-O", "raw", str(path), str(ref))
    assert ref.read_bytes() == built.expected()
    differential(path, tmp_path)
    compare_info(path)
