"""Property tests: images from tests/qcow2writer.py read and convert back byte for byte.

Layouts and contents are drawn by hypothesis (small examples, whole file well under 60 s); the
writer knows what every guest byte must be and which extent kind every run has.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qcow2writer import Compressed, Data, Qcow2Writer, Sub, Zero

qcow2 = pytest.importorskip("pyimagecache.qcow2")

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def payload(rng: random.Random, size: int, style: str) -> bytes:
    """Cluster contents with the features that matter: incompressible bytes, 4 KiB zero
    blocks inside allocated clusters, short data then zeros, and highly compressible runs."""
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
    return bytes([rng.randrange(256)]) * (size // 2) + rng.randbytes(8)


@st.composite
def layouts(draw: st.DrawFn, max_clusters: int = 20) -> Qcow2Writer:
    version = draw(st.sampled_from([2, 3, 3]))
    cluster_bits = draw(st.sampled_from([9, 10, 12, 14, 16]))
    extended = version == 3 and cluster_bits >= 14 and draw(st.booleans())
    compression = "deflate" if version == 2 else draw(st.sampled_from(["deflate", "zstd"]))
    cs = 1 << cluster_bits
    n = draw(st.integers(1, max_clusters))
    tail = draw(st.sampled_from([0, 0, 1, 511, 512, cs // 2, cs - 1]))
    size = max(1, n * cs - min(tail, cs - 1))
    w = Qcow2Writer(
        size,
        cluster_bits=cluster_bits,
        version=version,
        compression=compression,
        extended_l2=extended,
        refcount_order=draw(st.sampled_from([4, 4, 3, 6])) if version == 3 else 4,
        compressed_packing=draw(st.sampled_from(["packed", "packed", "sector", "cluster"])),
    )
    rng = random.Random(draw(st.integers(0, 2**32)))
    kinds = ["none", "data", "compressed"] + (["zero", "zero_alloc"] if version == 3 else [])
    if extended:
        kinds.append("sub")
    for c in range(w.nb_clusters):
        kind = draw(st.sampled_from(kinds))
        style = draw(st.sampled_from(["random", "holes", "short", "zeros", "repeat"]))
        if kind == "data":
            w[c] = Data(payload(rng, cs, style))
        elif kind == "compressed":
            style = "random" if style == "holes" and cs < 4096 else style
            w[c] = Compressed(payload(rng, cs, style), frames=draw(st.sampled_from([1, 1, 3])))
        elif kind == "zero":
            w[c] = Zero()
        elif kind == "zero_alloc":
            w[c] = Zero(preallocated=True)
        elif kind == "sub":
            alloc = draw(st.integers(0, 2**32 - 1))
            zero = draw(st.integers(0, 2**32 - 1)) & ~alloc
            host = alloc != 0 or draw(st.booleans())
            w[c] = Sub(payload(rng, cs, style) if host else None, alloc, zero)
    return w


@st.composite
def run_layouts(draw: st.DrawFn) -> Qcow2Writer:
    """Long runs of one kind over small clusters, so that whole 64-entry stretches of an L2
    table are unallocated, zero or contiguous data (the decoder's chunked fast paths), with
    runs starting and ending anywhere relative to those stretches."""
    version = draw(st.sampled_from([2, 3]))
    cluster_bits = draw(st.sampled_from([9, 10]))
    cs = 1 << cluster_bits
    w = Qcow2Writer(
        draw(st.integers(1, 400)) * cs - draw(st.sampled_from([0, 0, 1, cs - 1])),
        cluster_bits=cluster_bits,
        version=version,
    )
    rng = random.Random(draw(st.integers(0, 2**32)))
    kinds = ["none", "data", "compressed"] + (["zero", "zero_alloc"] if version == 3 else [])
    start = 0
    while start < w.nb_clusters:
        kind = draw(st.sampled_from(kinds))
        end = min(w.nb_clusters, start + draw(st.one_of(st.integers(1, 8), st.integers(60, 200))))
        for c in range(start, end):
            if kind == "data":
                w[c] = Data(rng.randbytes(cs) if rng.random() < 0.9 else bytes(cs))
            elif kind == "compressed":
                w[c] = Compressed(bytes([c % 256]) * cs)
            elif kind == "zero":
                w[c] = Zero()
            elif kind == "zero_alloc":
                w[c] = Zero(preallocated=True)
        start = end
    return w


def extents_of(img: object) -> List[Tuple[int, int, str]]:
    return [(e.offset, e.length, e.kind) for e in img.extents()]  # type: ignore[attr-defined]


def check_read(path: Path, w: Qcow2Writer, expected: bytes, rng: random.Random) -> None:
    with qcow2.open(path) as img:
        assert img.virtual_size == w.virtual_size
        assert img.cluster_size == w.cluster_size
        assert img.version == w.version
        assert img.extended_l2 == w.extended_l2
        assert img.snapshots_count == len(w.snapshots)
        assert img.read(0, w.virtual_size) == expected
        for _ in range(8):
            off = rng.randrange(w.virtual_size)
            length = rng.randrange(0, min(w.virtual_size - off, 3 * w.cluster_size) + 1)
            assert img.read(off, length) == expected[off : off + length], (off, length)
        assert extents_of(img) == w.expected_extents()


def nonzero_blocks(data: bytes, block: int = 4096) -> int:
    zero = bytes(block)
    return sum(1 for i in range(0, len(data), block) if data[i : i + block] != zero[:block])


def check_convert(src: Path, dst: Path, expected: bytes, workers: Optional[int] = None) -> None:
    qcow2.convert(src, dst, workers=workers)
    assert dst.read_bytes() == expected
    # Sparse: never more than the non-zero 4 KiB blocks, plus one block of slack for the tail.
    allocated = os.stat(dst).st_blocks * 512
    assert allocated <= nonzero_blocks(expected) * 4096 + 4096, (allocated, len(expected))


@SETTINGS
@given(w=layouts())
def test_read_and_extents_match_layout(tmp_path: Path, w: Qcow2Writer) -> None:
    built = w.build()
    path = tmp_path / "img.qcow2"
    built.save(path)
    check_read(path, w, built.expected(), random.Random(len(built.data)))


@SETTINGS
@given(w=layouts(), workers=st.sampled_from([None, 1, 3]))
def test_convert_reproduces_disk(tmp_path: Path, w: Qcow2Writer, workers: Optional[int]) -> None:
    built = w.build()
    src, dst = tmp_path / "img.qcow2", tmp_path / "out.raw"
    built.save(src)
    if dst.exists():
        dst.unlink()
    check_convert(src, dst, built.expected(), workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.qcow2", "out.raw"]


@SETTINGS
@given(w=run_layouts())
def test_long_runs_read_and_convert(tmp_path: Path, w: Qcow2Writer) -> None:
    built = w.build()
    src, dst = tmp_path / "img.qcow2", tmp_path / "out.raw"
    built.save(src)
    expected = built.expected()
    check_read(src, w, expected, random.Random(len(built.data)))
    if dst.exists():
        dst.unlink()
    check_convert(src, dst, expected)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(w=layouts(max_clusters=12), data=st.data())
def test_snapshots_do_not_leak_into_active_disk(
    tmp_path: Path, w: Qcow2Writer, data: st.DataObject
) -> None:
    # Snapshot, then overwrite some clusters: the active L1 (header) is what must be read.
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    w.snapshot("first")
    for c in data.draw(st.lists(st.integers(0, w.nb_clusters - 1), max_size=6)):
        w[c] = Data(rng.randbytes(w.cluster_size)) if c % 2 else None
    w.snapshot("second")
    if w.nb_clusters > 1:
        w[0] = Compressed(rng.randbytes(64) * 4)
    built = w.build()
    src, dst = tmp_path / "snap.qcow2", tmp_path / "snap.raw"
    built.save(src)
    check_read(src, w, built.expected(), rng)
    if dst.exists():
        dst.unlink()
    check_convert(src, dst, built.expected())


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(w=layouts(max_clusters=10), seed=st.integers(0, 2**32))
def test_backing_file_fills_unallocated(tmp_path: Path, w: Qcow2Writer, seed: int) -> None:
    # Only unallocated clusters/subclusters read through; zero ones stay zero.
    w.backing_file = "base.raw"
    w.backing_format = "raw"
    rng = random.Random(seed)
    backing = rng.randbytes(rng.randrange(0, w.virtual_size + w.cluster_size))
    (tmp_path / "base.raw").write_bytes(backing)
    built = w.build()
    src = tmp_path / "top.qcow2"
    built.save(src)
    expected = built.expected(backing)
    with qcow2.open(src) as img:
        assert img.backing_file == "base.raw"
        assert img.read(0, w.virtual_size) == expected
    dst = tmp_path / "top.raw"
    if dst.exists():
        dst.unlink()
    qcow2.convert(src, dst)
    assert dst.read_bytes() == expected


# -- fixed shapes the random layouts reach rarely ------------------------------------------------


def roundtrip(tmp_path: Path, w: Qcow2Writer, name: str = "img") -> bytes:
    built = w.build()
    src, dst = tmp_path / f"{name}.qcow2", tmp_path / f"{name}.raw"
    built.save(src)
    expected = built.expected()
    check_read(src, w, expected, random.Random(7))
    check_convert(src, dst, expected)
    return bytes(built.data)


def test_compressed_streams_share_sectors_and_cross_host_clusters(tmp_path: Path) -> None:
    rng = random.Random(1)
    w = Qcow2Writer(200 * 512, cluster_bits=9)
    for c in range(200):
        # ~300 compressed bytes each: packed streams start mid-sector and straddle clusters
        w[c] = Compressed(rng.randbytes(150) + bytes(362))
    built = w.build()
    starts = sorted(off for off, _ in built.compressed_spans.values())
    assert any(a // 512 == b // 512 for a, b in zip(starts, starts[1:]))  # shared sector
    spans = built.compressed_spans.values()
    assert any(off // 512 != (off + n - 1) // 512 for off, n in spans)  # crosses a cluster
    roundtrip(tmp_path, w)


@pytest.mark.parametrize("codec", ["deflate", "zstd"])
def test_last_compressed_stream_ends_the_file(tmp_path: Path, codec: str) -> None:
    # The final compressed cluster's last sector is cut short by EOF: reads are padded.
    w = Qcow2Writer(4 * 65536, compression=codec)
    w[3] = Compressed(b"tail" * 100 + bytes(1000))
    data = roundtrip(tmp_path, w)
    off, n = w.build().compressed_spans[3]
    assert off + n == len(data) and len(data) % 512 != 0


def test_sector_count_past_eof_is_padded(tmp_path: Path) -> None:
    # qemu iotest 214: a sector count reaching past EOF is fine while the stream is complete.
    w = Qcow2Writer(2 * 65536)
    w[0] = Compressed(b"abc" * 5000)
    w[1] = Compressed(b"xyz" * 7000, extra_sectors=5)
    roundtrip(tmp_path, w)


def test_zstd_multiple_frames_and_trailing_junk(tmp_path: Path) -> None:
    rng = random.Random(3)
    w = Qcow2Writer(6 * 16384, cluster_bits=14, compression="zstd", pad_compressed=37)
    for c in range(6):
        w[c] = Compressed(rng.randbytes(3000) + bytes(13384), frames=c + 1)
    roundtrip(tmp_path, w)


def test_two_mib_clusters_and_refcount_orders(tmp_path: Path) -> None:
    rng = random.Random(4)
    w = Qcow2Writer(3 * (1 << 21) - 512, cluster_bits=21, refcount_order=6)
    w[0] = Data(rng.randbytes(5000))
    w[1] = Compressed(bytes(1 << 20) + rng.randbytes(1000))
    w[2] = Zero(preallocated=True)
    roundtrip(tmp_path, w)


def test_extended_l2_every_subcluster_state(tmp_path: Path) -> None:
    rng = random.Random(5)
    w = Qcow2Writer(5 * 65536 - 1000, extended_l2=True, backing_file=None)
    w[0] = Sub(rng.randbytes(65536), alloc=0x55555555, zero=0xAAAAAAAA)
    w[1] = Sub(None, alloc=0, zero=0x0000FFFF)
    w[2] = Sub(rng.randbytes(65536), alloc=0, zero=0)  # host cluster, nothing allocated
    w[3] = Compressed(b"c" * 65536)
    w[4] = Zero(preallocated=True)
    roundtrip(tmp_path, w)


def test_large_empty_image_is_all_unallocated(tmp_path: Path) -> None:
    size = 1 << 40
    w = Qcow2Writer(size)
    path = tmp_path / "empty.qcow2"
    w.build().save(path)
    with qcow2.open(path) as img:
        assert extents_of(img) == [(0, size, "unallocated")]
        assert img.read(size - 4096, 4096) == bytes(4096)
    dst = tmp_path / "empty.raw"
    qcow2.convert(path, dst)
    assert os.stat(dst).st_size == size
    assert os.stat(dst).st_blocks == 0


def test_progress_is_monotonic_and_reaches_total(tmp_path: Path) -> None:
    rng = random.Random(6)
    w = Qcow2Writer(64 * 4096, cluster_bits=12)
    for c in range(0, 64, 2):
        w[c] = Compressed(rng.randbytes(1000) * 4) if c % 4 else Data(rng.randbytes(4096))
    src = tmp_path / "p.qcow2"
    w.build().save(src)
    calls: List[Tuple[int, int]] = []
    qcow2.convert(src, tmp_path / "p.raw", progress=lambda done, total: calls.append((done, total)))
    assert calls, "progress never called"
    assert all(total == calls[0][1] for _, total in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1][0] == calls[-1][1]


def test_info_reports_header_and_allocation(tmp_path: Path) -> None:
    w = Qcow2Writer(8 * 65536, compression="zstd", extended_l2=True, lazy_refcounts=True)
    w[0] = Data(b"d" * 65536)
    w[1] = Compressed(b"c" * 65536)
    w[2] = Zero()
    path = tmp_path / "i.qcow2"
    w.build().save(path)
    info = qcow2.info(path)
    assert info["virtual-size"] == 8 * 65536
    assert info["cluster-size"] == 65536
    assert info["actual-size"] == os.stat(path).st_blocks * 512
    spec = info["format-specific"]["data"]
    assert spec["compat"] == "1.1"
    assert spec["compression-type"] == "zstd"
    assert spec["extended-l2"] is True
    assert spec["lazy-refcounts"] is True
    assert spec["refcount-bits"] == 16
    assert spec["corrupt"] is False
    alloc = info["allocation"]
    assert alloc["data"] == 65536 and alloc["compressed"] == 65536
    assert alloc["zero"] == 65536 and alloc["unallocated"] == 5 * 65536
