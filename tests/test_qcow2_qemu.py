"""Differential tests: images made by qemu-img/qemu-io convert to exactly what
``qemu-img convert -O raw`` gives, allocating no more than it plus one cluster, and
``qcow2.info`` agrees with ``qemu-img info --output=json``. Also checks that qemu accepts what
tests/qcow2writer.py writes (``qemu-img check``), so the writer-based suites test real qcow2.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
from conftest import require_tool
from diskdiff import data_blocks, run
from qcow2writer import Compressed, Data, Qcow2Writer, Sub, Zero

qcow2 = pytest.importorskip("pyimagecache.qcow2")

pytestmark = pytest.mark.qemu
MiB = 1 << 20


@pytest.fixture(scope="module")
def qemu_img() -> str:
    return require_tool("qemu-img")


@pytest.fixture(scope="module")
def qemu_io() -> str:
    return require_tool("qemu-io")


def qemu_io_cmds(image: Path, cmds: Sequence[str], fmt: str = "qcow2", *extra: str) -> None:
    args = ["qemu-io", "-f", fmt, *extra]
    for c in cmds:
        args += ["-c", c]
    run(*args, str(image))


def source_raw(path: Path, size: int, seed: int = 0) -> Path:
    """A disk with what cloud images hold: incompressible runs, text, and zero holes."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        pick = rng.random()
        n = rng.choice([512, 4096, 65536, 200_000])
        if pick < 0.35:
            out += rng.randbytes(n)
        elif pick < 0.6:
            out += (b"cloud-init %d\n" % rng.randrange(10**6)) * (n // 18 + 1)
        else:
            out += bytes(n)
    path.write_bytes(bytes(out[:size]))
    return path


def qemu_info(image: Path) -> Dict[str, Any]:
    result: Dict[str, Any] = json.loads(run("qemu-img", "info", "--output=json", str(image)))
    return result


def differential(image: Path, tmp_path: Path) -> bytes:
    """Convert with both tools and compare bytes and allocation; returns the raw bytes."""
    ref, ours = tmp_path / "qemu.raw", tmp_path / "ours.raw"
    for p in (ref, ours):
        if p.exists():
            p.unlink()
    run("qemu-img", "convert", "-O", "raw", str(image), str(ref))
    qcow2.convert(image, ours)
    expected = ref.read_bytes()
    got = ours.read_bytes()
    assert len(got) == len(expected)
    if got != expected:
        bad = next(i for i in range(len(got)) if got[i] != expected[i])
        pytest.fail(f"{image.name}: first differing byte at {bad:#x}")
    cluster = qemu_info(image).get("cluster-size", 65536)
    # qemu-img never flushes its output; until ext4's delayed allocation settles, st_blocks
    # of a just-written file can be a few blocks short. Ours is fsynced; settle theirs too.
    fd = os.open(ref, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    # The data itself: ours holds data in no more filesystem blocks than qemu's, plus a cluster.
    block = os.stat(ours).st_blksize
    ours_data, ref_data = data_blocks(ours, block), data_blocks(ref, block)
    assert len(ours_data - ref_data) * block <= max(cluster, block), sorted(ours_data - ref_data)
    # st_blocks also counts filesystem metadata: ext4 needs an extent-tree block once a file has
    # more than 4 physical extents, and where the allocator places blocks varies from run to
    # run. So the allocation bar is qemu's plus one cluster, but at least one block.
    ours_alloc, ref_alloc = os.stat(ours).st_blocks * 512, os.stat(ref).st_blocks * 512
    assert ours_alloc <= ref_alloc + max(cluster, block), (ours_alloc, ref_alloc)
    with qcow2.open(image) as img:
        assert img.read(0, img.virtual_size) == expected
    return expected


SHARED_SPECIFIC = [
    "compat",
    "compression-type",
    "extended-l2",
    "lazy-refcounts",
    "refcount-bits",
    "corrupt",
]


def compare_info(image: Path) -> None:
    """The fields the issue lists must match qemu; other qemu fields must match when present."""
    ref = qemu_info(image)
    ours = qcow2.info(image)
    for key in ("virtual-size", "cluster-size", "actual-size"):
        assert ours[key] == ref[key], key
    for key in ("format", "dirty-flag", "backing-filename", "full-backing-filename"):
        if key in ref and key in ours:
            assert ours[key] == ref[key], key
    ref_spec = ref["format-specific"]["data"]
    our_spec = ours["format-specific"]["data"]
    for key in SHARED_SPECIFIC:
        if key in ref_spec:
            assert our_spec[key] == ref_spec[key], key
    assert sum(ours["allocation"].values()) == ref["virtual-size"]


def create(path: Path, size: int, *opts: str, fmt: str = "qcow2") -> Path:
    args = ["qemu-img", "create", "-q", "-f", fmt]
    if opts:
        args += ["-o", ",".join(opts)]
    run(*args, str(path), str(size))
    return path


WRITES = [
    "write -P 0x11 0 64k",
    "write -P 0x22 100k 3k",
    "write -P 0x33 1M 512",
    "write -P 0x00 1536k 64k",  # explicit zeros written as data
    "write -P 0x44 2047k 2k",
]


@pytest.mark.parametrize(
    "opts",
    [
        ("compat=0.10",),
        ("compat=1.1",),
        ("cluster_size=512",),
        ("cluster_size=2M",),
        ("compat=0.10", "cluster_size=4096"),
        ("extended_l2=on",),
        ("extended_l2=on", "cluster_size=16k"),
        ("refcount_bits=1",),
        ("refcount_bits=64",),
    ],
    ids=lambda o: "+".join(o),
)
def test_qemu_io_writes(qemu_img: str, qemu_io: str, tmp_path: Path, opts: Sequence[str]) -> None:
    img = create(tmp_path / "w.qcow2", 3 * MiB, *opts)
    qemu_io_cmds(img, WRITES)
    differential(img, tmp_path)
    compare_info(img)


@pytest.mark.parametrize("size", [3 * MiB + 512, MiB + 1536, 65536 * 3 - 512, 512])
@pytest.mark.parametrize("ext", [False, True])
def test_odd_virtual_sizes(
    qemu_img: str, qemu_io: str, tmp_path: Path, size: int, ext: bool
) -> None:
    opts = ("extended_l2=on",) if ext else ()
    img = create(tmp_path / "odd.qcow2", size, *opts)
    qemu_io_cmds(img, ["write -P 0x5a 0 512", f"write -P 0x6b {size - 512} 512"])
    data = differential(img, tmp_path)
    assert len(data) == size
    compare_info(img)


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
@pytest.mark.parametrize("cluster", ["512", "64k", "2M"])
def test_convert_compressed(qemu_img: str, tmp_path: Path, ctype: str, cluster: str) -> None:
    raw = source_raw(tmp_path / "src.raw", 3 * MiB, seed=len(cluster))
    img = tmp_path / "c.qcow2"
    run(
        "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2",
        "-o", f"compression_type={ctype},cluster_size={cluster}", str(raw), str(img),
    )  # fmt: skip
    assert differential(img, tmp_path) == raw.read_bytes()
    compare_info(img)


@pytest.mark.parametrize("ext", [False, True])
def test_zero_writes_and_discard(qemu_img: str, qemu_io: str, tmp_path: Path, ext: bool) -> None:
    raw = source_raw(tmp_path / "src.raw", 2 * MiB, seed=5)
    img = tmp_path / "z.qcow2"
    opts = "extended_l2=on" if ext else "compat=1.1"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", opts, str(raw), str(img))
    qemu_io_cmds(
        img,
        [
            "write -z 0 128k",  # zero clusters that keep their host clusters
            "write -z -u 256k 128k",  # zero clusters, host clusters released
            "write -z 400k 4k",  # partial cluster: subcluster zero bits with extended L2
            "discard 512k 192k",
            "discard 1000k 8k",
            "write -P 0x77 1500k 1k",
        ],
    )
    differential(img, tmp_path)
    compare_info(img)


def test_internal_snapshots_then_writes(qemu_img: str, qemu_io: str, tmp_path: Path) -> None:
    img = create(tmp_path / "s.qcow2", 2 * MiB)
    qemu_io_cmds(img, ["write -P 0x01 0 1M"])
    run("qemu-img", "snapshot", "-c", "one", str(img))
    qemu_io_cmds(img, ["write -P 0x02 64k 64k", "discard 512k 64k", "write -z 768k 64k"])
    run("qemu-img", "snapshot", "-c", "two", str(img))
    qemu_io_cmds(img, ["write -P 0x03 1M 128k", "write -P 0x04 0 4k"])
    data = differential(img, tmp_path)
    assert data[:4096] == b"\x04" * 4096 and data[65536 + 4096] == 2
    with qcow2.open(img) as image:
        assert image.snapshots_count == 2
    compare_info(img)


@pytest.mark.parametrize("prealloc", ["off", "metadata", "falloc", "full"])
def test_preallocation_modes(qemu_img: str, qemu_io: str, tmp_path: Path, prealloc: str) -> None:
    img = create(tmp_path / "p.qcow2", 2 * MiB, f"preallocation={prealloc}")
    qemu_io_cmds(img, ["write -P 0x9 64k 4k", "write -z 128k 64k"])
    differential(img, tmp_path)
    compare_info(img)


def test_lazy_refcounts_dirty_image(qemu_img: str, qemu_io: str, tmp_path: Path) -> None:
    img = create(tmp_path / "d.qcow2", 2 * MiB, "lazy_refcounts=on")
    # qemu-io's abort leaves the dirty bit set, as a crashed VM would (qemu iotest 039).
    subprocess.run(
        ["qemu-io", "-c", "write -P 0x2a 0 512", "-c", "abort", str(img)],
        capture_output=True,
    )
    with qcow2.open(img) as image:
        assert image.incompatible_features & 1, "qemu-io abort did not leave the dirty bit"
    data = differential(img, tmp_path)
    assert data[:512] == b"\x2a" * 512
    compare_info(img)


def test_backing_chain_qcow2_over_qcow2_over_raw(
    qemu_img: str, qemu_io: str, tmp_path: Path
) -> None:
    source_raw(tmp_path / "base.raw", 2 * MiB, seed=9)
    mid = tmp_path / "mid.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(mid))
    qemu_io_cmds(mid, ["write -P 0x10 64k 64k", "write -z 256k 64k"])
    top = tmp_path / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", str(top))
    qemu_io_cmds(top, ["write -P 0x20 96k 4k", "discard 1M 64k"])
    differential(top, tmp_path)
    differential(mid, tmp_path)
    compare_info(top)


def test_backing_shorter_than_image(qemu_img: str, qemu_io: str, tmp_path: Path) -> None:
    source_raw(tmp_path / "small.raw", MiB, seed=11)
    top = tmp_path / "grow.qcow2"
    run(
        "qemu-img", "create", "-q", "-f", "qcow2", "-b", "small.raw", "-F", "raw",
        str(top), str(3 * MiB),
    )  # fmt: skip
    qemu_io_cmds(top, ["write -P 0x31 2M 4k"])
    differential(top, tmp_path)


def test_missing_backing_file_is_a_clear_error(qemu_img: str, tmp_path: Path) -> None:
    base = create(tmp_path / "gone.qcow2", MiB)
    top = tmp_path / "orphan.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "gone.qcow2", "-F", "qcow2", str(top))
    base.unlink()
    from pyimagecache.errors import Qcow2Error

    dst = tmp_path / "out.raw"
    with pytest.raises(Qcow2Error, match="gone.qcow2"):
        qcow2.convert(top, dst)
    assert not dst.exists()


@pytest.mark.parametrize("raw_data", [False, True])
def test_external_data_file(
    qemu_img: str, qemu_io: str, tmp_path: Path, raw_data: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # qemu resolves a relative data_file against the working directory, the image's directory
    # for backing files: run everything from the image's directory so both agree.
    monkeypatch.chdir(tmp_path)
    opts = ["data_file=img.data"] + (["data_file_raw=on"] if raw_data else [])
    img = create(tmp_path / "img.qcow2", 2 * MiB, *opts)
    qemu_io_cmds(img, ["write -P 0x61 0 100k", "write -z 512k 64k", "write -P 0x62 1M 4k"])
    differential(img, tmp_path)
    compare_info(img)


# -- the writer's output is qcow2 qemu accepts -----------------------------------------------


def writer_shapes() -> List[Qcow2Writer]:
    rng = random.Random(12)
    shapes = []
    for bits, version, ext, comp in [
        (9, 2, False, "deflate"),
        (9, 3, False, "deflate"),
        (12, 3, False, "zstd"),
        (14, 3, True, "zstd"),
        (16, 3, True, "deflate"),
        (16, 2, False, "deflate"),
        (21, 3, False, "deflate"),
    ]:
        cs = 1 << bits
        w = Qcow2Writer(
            8 * cs - 512, cluster_bits=bits, version=version, extended_l2=ext, compression=comp
        )
        w[0] = Data(rng.randbytes(cs))
        w[1] = Compressed(rng.randbytes(cs // 4) + bytes(cs // 2))
        w[2] = Compressed(b"shared sector " * (cs // 14 + 1))
        if version == 3:
            w[3] = Zero()
            w[4] = Zero(preallocated=True)
        if ext:
            w[5] = Sub(rng.randbytes(cs), alloc=0x00FF00FF, zero=0xFF000000)
            w[6] = Sub(None, alloc=0, zero=0x0F0F0F0F)
        else:
            w[6] = Data(b"end")
        w.snapshot("s")
        w[0] = Compressed(b"after snapshot" * 10)
        shapes.append(w)
    return shapes


@pytest.mark.parametrize("w", writer_shapes(), ids=lambda w: f"v{w.version}-cb{w.cluster_bits}")
def test_qemu_accepts_writer_output(qemu_img: str, tmp_path: Path, w: Qcow2Writer) -> None:
    built = w.build()
    path = tmp_path / "w.qcow2"
    built.save(path)
    proc = subprocess.run(["qemu-img", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # 0: no errors, no leaks
    ref = tmp_path / "ref.raw"
    run("qemu-img", "convert", "-O", "raw", str(path), str(ref))
    assert ref.read_bytes() == built.expected()
    # the snapshot's L1 and table are valid too: qemu reads the snapshot's disk state
    snap = tmp_path / "snap.raw"
    run("qemu-img", "convert", "-l", "snapshot.name=s", "-O", "raw", str(path), str(snap))
    saved = w.clusters
    w.clusters = w.snapshots[0].clusters
    try:
        assert snap.read_bytes() == w.expected()
    finally:
        w.clusters = saved
    differential(path, tmp_path)


def test_writer_expected_extents_match_qemu_map(qemu_img: str, tmp_path: Path) -> None:
    w = writer_shapes()[4]
    path = tmp_path / "m.qcow2"
    w.build().save(path)
    entries = json.loads(run("qemu-img", "map", "--output=json", str(path)))

    def has_data(off: int) -> bool:
        e = next(e for e in entries if e["start"] <= off < e["start"] + e["length"])
        return bool(e["data"]) and not e["zero"]

    for off, length, kind in w.expected_extents():
        for probe in (off, off + length - 1):
            assert has_data(probe) == (kind in ("data", "compressed")), (probe, kind)
