"""API-level behaviour of pyimagecache.qcow2 that the round-trip, qemu and malformed suites do
not pin down: attributes, lifecycle, argument checks, info fields, convert's output file
(mode, sparseness, atomic replacement, progress rate, workers), huge empty images, the
fallbacks for optional platform calls, backing-file resolution and bounds, concurrent reads.
"""

from __future__ import annotations

import json
import os
import random
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
from conftest import require_tool
from qcow2writer import Compressed, Data, Qcow2Writer, Zero

from pyimagecache import _sparse, qcow2
from pyimagecache.errors import ImageCacheError, Qcow2CorruptError, Qcow2Error

CS = 65536
TIB = 1 << 40


# -- helpers ----------------------------------------------------------------------------------


def save(w: Qcow2Writer, path: Path) -> bytes:
    """Build ``w`` into ``path``; return the raw disk a correct reader gives (no backing)."""
    built = w.build()
    built.save(path)
    return built.expected()


def mixed(
    seed: int = 0, clusters: int = 24, cluster_bits: int = 16, compression: str = "deflate"
) -> Qcow2Writer:
    """Data, compressed, zero and unallocated clusters, with an odd tail."""
    rng = random.Random(seed)
    cs = 1 << cluster_bits
    w = Qcow2Writer(clusters * cs - 777, cluster_bits=cluster_bits, compression=compression)
    for c in range(clusters):
        r = c % 6
        if r in (0, 1):
            w[c] = Data(rng.randbytes(cs // 2) + bytes(cs // 4) + rng.randbytes(cs // 4))
        elif r in (2, 3):
            w[c] = Compressed(rng.randbytes(200) * (cs // 400) + bytes(cs // 8))
        elif r == 4:
            w[c] = Zero(preallocated=c % 12 == 4)
    return w


def sparse_files_reported(directory: Path) -> bool:
    """True when this filesystem reports holes: a truncated 1 MiB file occupies no blocks."""
    probe = directory / "sparse-probe"
    with open(probe, "wb") as f:
        f.truncate(1 << 20)
    try:
        return os.stat(probe).st_blocks == 0
    finally:
        probe.unlink()


def names(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


def open_fds() -> Optional[int]:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


Progress = List[Tuple[int, Optional[int]]]


def recorder() -> Tuple[Progress, Callable[[int, Optional[int]], None]]:
    calls: Progress = []

    def progress(done: int, total: Optional[int]) -> None:
        calls.append((done, total))

    return calls, progress


# -- attributes and lifecycle -----------------------------------------------------------------


def test_default_v3_image_attributes(tmp_path: Path) -> None:
    w = Qcow2Writer(5 * CS + 100)
    w[0] = Data(b"a" * CS)
    built = w.build()
    path = tmp_path / "a.qcow2"
    built.save(path)
    with qcow2.open(str(path)) as img:
        assert isinstance(img, qcow2.Image)
        assert img.path == path
        assert img.version == 3
        assert img.cluster_bits == 16
        assert img.cluster_size == CS
        assert img.virtual_size == 5 * CS + 100
        assert img.compression_type == "deflate"
        assert img.incompatible_features == 0
        assert img.compatible_features == 0
        assert img.autoclear_features == 0
        assert img.extended_l2 is False
        assert img.refcount_bits == 16
        assert img.snapshots_count == 0
        assert img.dirty is False
        assert img.corrupt is False
        assert img.lazy_refcounts is False
        assert img.backing_file is None
        assert img.backing_format is None
        assert img.data_file is None
        assert img.l1_size == built.l1_size


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"version": 2}, {"version": 2, "refcount_bits": 16, "compression_type": "deflate"}),
        ({"compression": "zstd"}, {"compression_type": "zstd", "incompatible_features": 8}),
        ({"cluster_bits": 9}, {"cluster_bits": 9, "cluster_size": 512}),
        ({"cluster_bits": 21}, {"cluster_bits": 21, "cluster_size": 2 << 20}),
        ({"refcount_order": 0}, {"refcount_bits": 1}),
        ({"refcount_order": 3}, {"refcount_bits": 8}),
        ({"refcount_order": 6}, {"refcount_bits": 64}),
        ({"dirty": True}, {"dirty": True, "corrupt": False, "incompatible_features": 1}),
        ({"lazy_refcounts": True}, {"lazy_refcounts": True, "compatible_features": 1}),
        ({"extended_l2": True}, {"extended_l2": True, "incompatible_features": 16}),
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()),
)
def test_header_attributes(
    tmp_path: Path, kwargs: Dict[str, object], expect: Dict[str, object]
) -> None:
    bits = int(kwargs.get("cluster_bits", 16))  # type: ignore[call-overload]
    w = Qcow2Writer(3 << bits, **kwargs)  # type: ignore[arg-type]
    w[1] = Data(b"x" * 100)
    path = tmp_path / "h.qcow2"
    expected = save(w, path)
    with qcow2.open(path) as img:
        got = {name: getattr(img, name) for name in expect}
        assert got == expect
        assert img.read(0, img.virtual_size) == expected


def test_corrupt_bit_is_reported_and_image_still_reads(tmp_path: Path) -> None:
    # qemu opens a corrupt-flagged image read-only; a reader reports the flag.
    w = Qcow2Writer(2 * CS)
    w[0] = Data(b"c" * CS)
    built = w.build()
    built.set_header("incompatible_features", 2)
    path = tmp_path / "c.qcow2"
    built.save(path)
    with qcow2.open(path) as img:
        assert img.corrupt is True
        assert img.dirty is False
        assert img.read(0, 4) == b"cccc"
    assert qcow2.info(path)["format-specific"]["data"]["corrupt"] is True


def test_snapshots_count(tmp_path: Path) -> None:
    w = Qcow2Writer(4 * CS)
    w[0] = Data(b"1" * CS)
    w.snapshot("one")
    w[0] = Data(b"2" * CS)
    w.snapshot("two")
    w[0] = Data(b"3" * CS)
    path = tmp_path / "s.qcow2"
    save(w, path)
    with qcow2.open(path) as img:
        assert img.snapshots_count == 2
        assert img.read(0, 1) == b"3"
    assert qcow2.info(path)["snapshots-count"] == 2


def test_backing_attributes(tmp_path: Path) -> None:
    (tmp_path / "base.raw").write_bytes(b"B" * CS)
    w = Qcow2Writer(2 * CS, backing_file="base.raw", backing_format="raw")
    path = tmp_path / "top.qcow2"
    save(w, path)
    with qcow2.open(path) as img:
        assert img.backing_file == "base.raw"  # as stored, not resolved
        assert img.backing_format == "raw"


def test_context_manager_closes(tmp_path: Path) -> None:
    path = tmp_path / "cm.qcow2"
    save(mixed(), path)
    with qcow2.open(path) as img:
        assert img.read(0, 16)
    with pytest.raises(ValueError, match="closed"):
        img.read(0, 16)
    with pytest.raises(ValueError, match="closed"):
        list(img.extents())
    img.close()  # idempotent


def test_close_releases_file_descriptors(tmp_path: Path) -> None:
    (tmp_path / "base.raw").write_bytes(b"b" * CS)
    w = Qcow2Writer(2 * CS, backing_file="base.raw")
    path = tmp_path / "fd.qcow2"
    save(w, path)
    before = open_fds()
    if before is None:
        pytest.skip("no /proc/self/fd")
    img = qcow2.open(path)
    assert open_fds() == before + 2  # the image and its backing file
    img.read(0, 10)
    img.close()
    assert open_fds() == before


# -- extents ----------------------------------------------------------------------------------


def test_extent_constants_and_fields() -> None:
    assert (qcow2.DATA, qcow2.COMPRESSED, qcow2.ZERO, qcow2.UNALLOCATED) == (
        "data",
        "compressed",
        "zero",
        "unallocated",
    )
    e = qcow2.Extent(0, 512, qcow2.DATA)
    assert qcow2.Extent._fields == ("offset", "length", "kind")
    assert (e.offset, e.length, e.kind) == (0, 512, "data")
    assert e == (0, 512, "data")


def test_extents_merge_adjacent_runs(tmp_path: Path) -> None:
    w = Qcow2Writer(9 * CS + 1000)
    w[0] = Data(b"a" * CS)
    w[1] = Data(b"b" * 10)  # not host-contiguous with 0 in general: still one extent
    w[2] = Compressed(b"c" * CS)
    w[3] = Compressed(b"d" * CS)
    w[4] = Zero()
    w[5] = Zero(preallocated=True)
    w[7] = Data(b"e" * CS)
    w[9] = Zero()  # the partial last cluster
    path = tmp_path / "m.qcow2"
    save(w, path)
    with qcow2.open(path) as img:
        got = list(img.extents())
    assert all(isinstance(e, qcow2.Extent) for e in got)
    assert got == [
        (0, 2 * CS, qcow2.DATA),
        (2 * CS, 2 * CS, qcow2.COMPRESSED),
        (4 * CS, 2 * CS, qcow2.ZERO),
        (6 * CS, CS, qcow2.UNALLOCATED),
        (7 * CS, CS, qcow2.DATA),
        (8 * CS, CS, qcow2.UNALLOCATED),
        (9 * CS, 1000, qcow2.ZERO),
    ]


def test_extents_merge_across_l2_tables_and_empty_l1_entries(tmp_path: Path) -> None:
    # 512-byte clusters: one L2 table maps 64 clusters (32 KiB).
    w = Qcow2Writer(64 * 6 * 512, cluster_bits=9)
    for c in range(60, 70):  # a data run crossing from L2 table 0 into table 1
        w[c] = Data(bytes([c]) * 512)
    w[64 * 5 + 3] = Data(b"z" * 512)  # L1 entries 2..4 are zero
    path = tmp_path / "l2.qcow2"
    save(w, path)
    with qcow2.open(path) as img:
        got = list(img.extents())
    assert got == [
        (0, 60 * 512, "unallocated"),
        (60 * 512, 10 * 512, "data"),
        (70 * 512, (64 * 5 + 3 - 70) * 512, "unallocated"),
        ((64 * 5 + 3) * 512, 512, "data"),
        ((64 * 5 + 4) * 512, 60 * 512, "unallocated"),
    ]
    assert got == [tuple(e) for e in w.expected_extents()]


# -- read() arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (-1, 10),
        (0, -1),
        (-4096, 4096),
        (0, 4 * CS + 1),
        (4 * CS, 1),
        (4 * CS - 10, 11),
        (1 << 62, 1),
    ],
)
def test_read_outside_the_disk_is_value_error(tmp_path: Path, offset: int, length: int) -> None:
    w = Qcow2Writer(4 * CS)
    w[3] = Data(b"t" * CS)
    path = tmp_path / "r.qcow2"
    save(w, path)
    with qcow2.open(path) as img, pytest.raises(ValueError):
        img.read(offset, length)


def test_zero_length_reads_and_the_last_byte(tmp_path: Path) -> None:
    w = Qcow2Writer(4 * CS - 1)
    w[3] = Data(b"t" * CS)
    path = tmp_path / "r.qcow2"
    save(w, path)
    with qcow2.open(path) as img:
        assert img.read(0, 0) == b""
        assert img.read(CS + 5, 0) == b""
        assert img.read(img.virtual_size, 0) == b""
        assert img.read(img.virtual_size - 1, 1) == b"t"
        assert isinstance(img.read(0, 1), bytes)


# -- info() -----------------------------------------------------------------------------------


def test_info_fields_and_allocation_sum(tmp_path: Path) -> None:
    w = mixed(seed=1)
    path = tmp_path / "i.qcow2"
    save(w, path)
    facts = qcow2.info(path)
    json.dumps(facts)  # JSON-serialisable as is
    assert facts["format"] == "qcow2"
    assert facts["filename"] == str(path)
    assert facts["virtual-size"] == w.virtual_size
    assert facts["cluster-size"] == CS
    assert facts["dirty-flag"] is False
    assert facts["actual-size"] == os.stat(path).st_blocks * 512
    assert "backing-filename" not in facts
    assert facts["format-specific"]["type"] == "qcow2"
    assert facts["format-specific"]["data"]["compat"] == "1.1"
    assert facts["format-specific"]["data"]["compression-type"] == "zlib"
    alloc = facts["allocation"]
    assert set(alloc) == {"data", "compressed", "zero", "unallocated"}
    assert sum(alloc.values()) == w.virtual_size
    want = dict.fromkeys(alloc, 0)
    for _, length, kind in w.expected_extents():
        want[kind] += length
    assert alloc == want
    assert all(v > 0 for v in alloc.values())


def test_info_v2_compat_and_dirty(tmp_path: Path) -> None:
    w = Qcow2Writer(3 * CS, version=2)
    w[0] = Data(b"v" * CS)
    path = tmp_path / "v2.qcow2"
    save(w, path)
    facts = qcow2.info(path)
    assert facts["format-specific"]["data"]["compat"] == "0.10"
    assert facts["format-specific"]["data"]["compression-type"] == "zlib"
    assert facts["allocation"] == {"data": CS, "compressed": 0, "zero": 0, "unallocated": 2 * CS}

    dirty = Qcow2Writer(CS, dirty=True, lazy_refcounts=True)
    save(dirty, tmp_path / "dirty.qcow2")
    facts = qcow2.info(tmp_path / "dirty.qcow2")
    assert facts["dirty-flag"] is True
    assert facts["format-specific"]["data"]["lazy-refcounts"] is True


def test_info_zstd_and_backing(tmp_path: Path) -> None:
    (tmp_path / "base.raw").write_bytes(b"q" * 100)
    w = Qcow2Writer(2 * CS, compression="zstd", backing_file="base.raw", backing_format="raw")
    w[0] = Compressed(b"z" * CS)
    path = tmp_path / "z.qcow2"
    save(w, path)
    facts = qcow2.info(path)
    assert facts["format-specific"]["data"]["compression-type"] == "zstd"
    assert facts["backing-filename"] == "base.raw"
    assert facts["full-backing-filename"] == str(tmp_path / "base.raw")
    assert facts["backing-filename-format"] == "raw"
    assert facts["allocation"] == {"data": 0, "compressed": CS, "zero": 0, "unallocated": CS}


def test_info_actual_size_counts_blocks_not_length(tmp_path: Path) -> None:
    if not sparse_files_reported(tmp_path):
        pytest.skip("this filesystem does not report sparse files")
    w = Qcow2Writer(4 * CS)
    w[0] = Data(b"s" * CS)
    path = tmp_path / "sp.qcow2"
    save(w, path)
    with open(path, "r+b") as f:  # a hole of 8 MiB at the end: length grows, blocks do not
        f.truncate(os.path.getsize(path) + (8 << 20))
    facts = qcow2.info(path)
    assert facts["actual-size"] == os.stat(path).st_blocks * 512
    assert facts["actual-size"] < os.path.getsize(path) - (4 << 20)


# -- convert() --------------------------------------------------------------------------------


def test_convert_returns_dst_path_with_mode_and_size(tmp_path: Path) -> None:
    w = mixed(seed=2)
    src = tmp_path / "m.qcow2"
    expected = save(w, src)
    dst = tmp_path / "out.raw"
    umask = os.umask(0o022)
    os.umask(umask)
    result = qcow2.convert(str(src), str(dst))
    assert isinstance(result, Path)
    assert result == dst
    st = os.stat(dst)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666 & ~umask
    assert st.st_size == w.virtual_size
    assert dst.read_bytes() == expected
    assert names(tmp_path) == ["m.qcow2", "out.raw"]


def test_convert_is_sparse_at_file_block_granularity(tmp_path: Path) -> None:
    if not sparse_files_reported(tmp_path):
        pytest.skip("this filesystem does not report sparse files")
    w = Qcow2Writer(8 * CS)
    block = 4096
    cluster = bytearray(CS)  # 16 blocks, two of them non-zero
    cluster[0:block] = b"\x01" * block
    cluster[9 * block + 100 : 9 * block + 101] = b"\x02"
    w[0] = Data(bytes(cluster))
    w[2] = Compressed(bytes(5 * block) + b"\x03" + bytes(CS - 5 * block - 1))  # one block
    w[3] = Data(bytes(CS))  # an allocated all-zero cluster: nothing written
    w[4] = Zero(preallocated=True)
    src, dst = tmp_path / "s.qcow2", tmp_path / "s.raw"
    expected = save(w, src)
    qcow2.convert(src, dst)
    assert dst.read_bytes() == expected
    allocated = os.stat(dst).st_blocks * 512
    assert 0 < allocated <= 3 * block, allocated


def test_convert_sparse_blocks_are_aligned_to_the_file_not_the_run(tmp_path: Path) -> None:
    if not sparse_files_reported(tmp_path):
        pytest.skip("this filesystem does not report sparse files")
    # 512-byte clusters: the data run starts at guest 1536, mid-way through file block 0;
    # its only non-zero cluster (guest 4608..5120) lies inside file block 1.
    w = Qcow2Writer(64 * 512, cluster_bits=9)
    for c in range(3, 21):
        w[c] = Data(b"\x07" * 512 if c == 9 else bytes(512))
    src, dst = tmp_path / "a.qcow2", tmp_path / "a.raw"
    expected = save(w, src)
    qcow2.convert(src, dst)
    assert dst.read_bytes() == expected
    assert os.stat(dst).st_blocks * 512 == 4096


def test_convert_replaces_existing_dst_atomically(tmp_path: Path) -> None:
    w = mixed(seed=3)
    src, dst = tmp_path / "m.qcow2", tmp_path / "out.raw"
    expected = save(w, src)
    old = b"old contents " * 1000
    dst.write_bytes(old)
    os.link(dst, tmp_path / "old-link")
    old_inode = os.stat(dst).st_ino
    qcow2.convert(src, dst)
    assert dst.read_bytes() == expected
    assert os.stat(dst).st_ino != old_inode  # a rename onto dst, not a rewrite in place
    assert (tmp_path / "old-link").read_bytes() == old  # so no reader ever saw a mix
    assert names(tmp_path) == ["m.qcow2", "old-link", "out.raw"]


def test_failed_convert_leaves_dst_and_no_temp(tmp_path: Path) -> None:
    # The error is found mid-way (a compressed cluster that does not inflate), after the
    # temporary output was created.
    w = Qcow2Writer(40 * CS)
    for c in range(0, 30):
        w[c] = Data(bytes([c + 1]) * CS)
    w[35] = Compressed(b"x" * CS, stream=b"\xff" * 300)
    src, dst = tmp_path / "bad.qcow2", tmp_path / "out.raw"
    save(w, src)
    dst.write_bytes(b"keep me")
    with pytest.raises(Qcow2CorruptError):
        qcow2.convert(src, dst, workers=2)
    assert dst.read_bytes() == b"keep me"
    assert names(tmp_path) == ["bad.qcow2", "out.raw"]
    # The worker threads were joined, not left running after the error.
    assert not [t for t in threading.enumerate() if t.name.startswith("convert-")]


def test_progress_callback_error_propagates_and_leaves_dst(tmp_path: Path) -> None:
    w = Qcow2Writer(40 * CS)
    for c in range(40):
        w[c] = Data(bytes([c + 1]) * CS)
    src, dst = tmp_path / "p.qcow2", tmp_path / "out.raw"
    save(w, src)
    dst.write_bytes(b"keep me")

    class Stop(Exception):
        pass

    def progress(done: int, total: Optional[int]) -> None:
        raise Stop

    with pytest.raises(Stop):
        qcow2.convert(src, dst, progress=progress)
    assert dst.read_bytes() == b"keep me"
    assert names(tmp_path) == ["out.raw", "p.qcow2"]


def test_missing_source_is_file_not_found_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "absent.qcow2"
    with pytest.raises(FileNotFoundError) as info:
        qcow2.convert(src, tmp_path / "out.raw")
    assert info.value.filename is not None and str(src) in str(info.value.filename)
    assert names(tmp_path) == []


def test_directory_as_source_error_names_it(tmp_path: Path) -> None:
    # Linux lets a directory be opened read-only; the failure comes from the first pread.
    src = tmp_path / "a-directory"
    src.mkdir()
    with pytest.raises((OSError, ImageCacheError)) as info:
        qcow2.open(src)
    err = info.value
    named = str(err) + " " + str(getattr(err, "filename", None))
    assert str(src) in named, repr(err)


def many_small_tasks(path: Path, n: int = 16384) -> Tuple[int, int, bytes]:
    """``n`` (default: 64 MiB of) 4 KiB clusters whose L2 entries point at four shared host
    clusters, so no two are host-contiguous: the converter gets one task per cluster."""
    w = Qcow2Writer(n * 4096, cluster_bits=12)
    specs = [Data(bytes([i + 1]) * 4096) for i in range(4)]
    for c in range(n):
        w[c] = specs[c % 4]
    return n, w.virtual_size, save(w, path)


def test_progress_is_rate_limited_and_ends_at_total(tmp_path: Path) -> None:
    src, dst = tmp_path / "p.qcow2", tmp_path / "p.raw"
    clusters, size, expected = many_small_tasks(src)
    calls, progress = recorder()
    start = time.monotonic()
    qcow2.convert(src, dst, progress=progress, workers=2)
    elapsed = time.monotonic() - start
    assert dst.read_bytes() == expected
    assert calls[-1] == (size, size)
    assert all(total == size for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] >= 0
    # "at most ~10 calls a second plus a final one", with a factor 2 of slack
    assert len(calls) <= 20 * elapsed + 3, (len(calls), elapsed)
    assert len(calls) < clusters // 50, len(calls)


def test_progress_on_an_image_with_nothing_allocated(tmp_path: Path) -> None:
    src = tmp_path / "e.qcow2"
    save(Qcow2Writer(10 * CS + 3), src)
    calls, progress = recorder()
    qcow2.convert(src, tmp_path / "e.raw", progress=progress)
    # Progress counts bytes of real work (data to read or decompress): none here.
    assert calls == [(0, 0)]


def test_zero_sized_image(tmp_path: Path) -> None:
    src, dst = tmp_path / "z.qcow2", tmp_path / "z.raw"
    save(Qcow2Writer(0), src)
    with qcow2.open(src) as img:
        assert img.virtual_size == 0
        assert list(img.extents()) == []
        assert img.read(0, 0) == b""
        with pytest.raises(ValueError):
            img.read(0, 1)
    assert qcow2.info(src)["allocation"] == dict.fromkeys(
        ("data", "compressed", "zero", "unallocated"), 0
    )
    calls, progress = recorder()
    assert qcow2.convert(src, dst, progress=progress).read_bytes() == b""
    assert calls == [(0, 0)]


def test_workers_one_and_four_give_identical_bytes(tmp_path: Path) -> None:
    w = Qcow2Writer(300 * 16384 - 512, cluster_bits=14)
    rng = random.Random(9)
    for c in range(300):
        r = rng.randrange(5)
        if r == 0:
            w[c] = Data(rng.randbytes(16384))
        elif r in (1, 2):
            w[c] = Compressed(rng.randbytes(300) * 20 + bytes(10384))
        elif r == 3:
            w[c] = Zero()
    src = tmp_path / "w.qcow2"
    expected = save(w, src)
    one = qcow2.convert(src, tmp_path / "one.raw", workers=1).read_bytes()
    four = qcow2.convert(src, tmp_path / "four.raw", workers=4).read_bytes()
    assert one == four == expected


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_below_one_is_value_error_before_dst_exists(tmp_path: Path, workers: int) -> None:
    src, dst = tmp_path / "m.qcow2", tmp_path / "never.raw"
    save(mixed(), src)
    with pytest.raises(ValueError, match="workers"):
        qcow2.convert(src, dst, workers=workers)
    assert names(tmp_path) == ["m.qcow2"]


def test_default_workers_is_bounded() -> None:
    n = qcow2.default_workers()
    assert 1 <= n <= 8


# -- huge empty images ------------------------------------------------------------------------


def one_tib_writer(path: Path) -> None:
    Qcow2Writer(TIB).build().save(path)  # not save(): expected() would be 1 TiB of bytes


def one_tib_qemu(path: Path) -> None:
    import subprocess

    qemu_img = require_tool("qemu-img")
    subprocess.run(
        [qemu_img, "create", "-q", "-f", "qcow2", str(path), "1T"], check=True, timeout=30
    )


@pytest.mark.parametrize("make", [one_tib_writer, one_tib_qemu], ids=["writer", "qemu-img"])
def test_empty_one_tib_image_converts_instantly(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    src, dst = tmp_path / "huge.qcow2", tmp_path / "huge.raw"
    make(src)
    try:
        with qcow2.open(src) as img:
            assert img.virtual_size == TIB
            assert list(img.extents()) == [(0, TIB, qcow2.UNALLOCATED)]
            assert img.read(TIB - 4096, 4096) == bytes(4096)
        assert qcow2.info(src)["allocation"]["unallocated"] == TIB
        calls, progress = recorder()
        start = time.monotonic()
        qcow2.convert(src, dst, progress=progress)
        elapsed = time.monotonic() - start
        assert elapsed < 5, f"converting an empty 1 TiB image took {elapsed:.1f} s"
        st = os.stat(dst)
        assert st.st_size == TIB
        assert st.st_blocks * 512 <= 64 * 1024
        assert calls == [(0, 0)]  # nothing to read: progress counts real work only
    finally:
        for p in (src, dst):
            if p.exists():
                p.unlink()


def test_one_tib_image_with_only_its_last_cluster_allocated(tmp_path: Path) -> None:
    w = Qcow2Writer(TIB)
    last = w.nb_clusters - 1
    w[last] = Data(b"end!" * (CS // 4))
    src, dst = tmp_path / "tail.qcow2", tmp_path / "tail.raw"
    w.build().save(src)
    try:
        start = time.monotonic()
        with qcow2.open(src) as img:
            assert list(img.extents()) == [
                (0, TIB - CS, qcow2.UNALLOCATED),
                (TIB - CS, CS, qcow2.DATA),
            ]
            assert img.read(TIB - CS - 2, 6) == b"\0\0end!"
        qcow2.convert(src, dst)
        assert time.monotonic() - start < 5
        with open(dst, "rb") as f:
            f.seek(TIB - CS - 4096)
            assert f.read() == bytes(4096) + b"end!" * (CS // 4)
    finally:
        for p in (src, dst):
            if p.exists():
                p.unlink()


# -- fallbacks for optional platform calls ----------------------------------------------------
# The converter reads with os.preadv when the platform has it (bound once, at import, as
# pyimagecache._sparse._preadv), starts writeback with os.posix_fadvise every 32 MiB, and sizes
# its pool with os.sched_getaffinity. It does not use copy_file_range, SEEK_DATA or fallocate.


def test_convert_without_preadv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = mixed(seed=4)
    src = tmp_path / "m.qcow2"
    expected = save(w, src)
    monkeypatch.delattr(os, "preadv", raising=False)
    monkeypatch.setattr(_sparse, "_preadv", None)
    calls: List[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        calls.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    assert qcow2.convert(src, tmp_path / "out.raw", workers=3).read_bytes() == expected
    assert calls, "os.pread was never used"


def test_convert_writeback_advice_is_used_and_optional(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "p.qcow2"
    # ~36 MiB of non-zero output: past the first writeback point (32 MiB)
    _, _, expected = many_small_tasks(src, 9000)
    if not hasattr(os, "posix_fadvise"):  # macOS, or --hide-linux-calls: the fallback
        assert qcow2.convert(src, tmp_path / "c.raw", sync=True).read_bytes() == expected
        return
    real = os.posix_fadvise
    advised: List[int] = []

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append(advice)
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    # Writeback is started early only when the output is flushed (sync=True, as the cache
    # converts); a plain convert, like qemu-img's, leaves the page cache alone.
    assert qcow2.convert(src, tmp_path / "n.raw").read_bytes() == expected
    assert advised == []
    assert qcow2.convert(src, tmp_path / "a.raw", sync=True).read_bytes() == expected
    assert advised, "posix_fadvise was never called: this test no longer covers the fallback"

    def failing(fd: int, offset: int, length: int, advice: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", failing)
    assert qcow2.convert(src, tmp_path / "b.raw", sync=True).read_bytes() == expected

    monkeypatch.delattr(os, "posix_fadvise")
    assert qcow2.convert(src, tmp_path / "c.raw", sync=True).read_bytes() == expected


def test_default_workers_without_sched_getaffinity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert qcow2.default_workers() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert qcow2.default_workers() == 1
    src = tmp_path / "m.qcow2"
    expected = save(mixed(seed=5), src)
    assert qcow2.convert(src, tmp_path / "out.raw").read_bytes() == expected


# -- backing files ----------------------------------------------------------------------------


def test_relative_backing_resolves_next_to_the_image_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rng = random.Random(11)
    backing = rng.randbytes(4 * CS)
    (images / "base.raw").write_bytes(backing)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "base.raw").write_bytes(b"\xee" * 4 * CS)  # the wrong one, in the cwd
    w = Qcow2Writer(4 * CS, backing_file="base.raw")  # no format: probed (not qcow2 -> raw)
    w[1] = Data(b"top" * 1000)
    w[2] = Zero()
    built = w.build()
    built.save(images / "top.qcow2")
    expected = built.expected(backing)
    assert expected[:CS] == backing[:CS]
    monkeypatch.chdir(elsewhere)
    with qcow2.open(Path("..") / "images" / "top.qcow2") as img:
        assert img.read(0, 4 * CS) == expected
        assert list(img.extents())[0] == (0, CS, qcow2.UNALLOCATED)
    out = qcow2.convert(Path("..") / "images" / "top.qcow2", "top.raw")
    assert (elsewhere / out).read_bytes() == expected


def test_backing_shorter_than_the_image_reads_zeros_past_its_end(tmp_path: Path) -> None:
    backing = b"\x11" * (CS + CS // 2 + 3)  # ends mid-cluster and mid-sector
    (tmp_path / "short.raw").write_bytes(backing)
    w = Qcow2Writer(4 * CS, backing_file="short.raw", backing_format="raw")
    w[3] = Data(b"\x22" * CS)
    src = tmp_path / "top.qcow2"
    save(w, src)
    expected = backing + bytes(3 * CS - len(backing)) + b"\x22" * CS
    with qcow2.open(src) as img:
        assert img.read(0, 4 * CS) == expected
        assert img.read(len(backing) - 2, 4) == b"\x11\x11\0\0"
        assert img.read(2 * CS, 100) == bytes(100)  # entirely past the backing file's end
    assert qcow2.convert(src, tmp_path / "top.raw").read_bytes() == expected


def test_qcow2_backing_chain_reads_through_each_level(tmp_path: Path) -> None:
    (tmp_path / "l0.raw").write_bytes(b"0" * 4 * CS)
    prev = "l0.raw"
    for level in range(1, 4):
        w = Qcow2Writer(4 * CS, backing_file=prev)
        w[level] = Data(str(level).encode() * CS)
        prev = f"l{level}.qcow2"
        save(w, tmp_path / prev)
    with qcow2.open(tmp_path / prev) as img:
        assert img.read(0, 4 * CS) == b"".join(str(i).encode() * CS for i in range(4))


def chain(tmp_path: Path, qcow2_levels: int) -> Path:
    """A raw base under ``qcow2_levels`` qcow2 images; returns the top one."""
    (tmp_path / "c0.raw").write_bytes(b"base" * 128)
    prev = "c0.raw"
    for level in range(1, qcow2_levels + 1):
        name = f"c{level}.qcow2"
        save(Qcow2Writer(4096, cluster_bits=9, backing_file=prev), tmp_path / name)
        prev = name
    return tmp_path / prev


def test_backing_chain_at_the_bound_opens(tmp_path: Path) -> None:
    # MAX_BACKING_DEPTH backing files below the top image: the raw base is the last one.
    top = chain(tmp_path, qcow2.MAX_BACKING_DEPTH)
    with qcow2.open(top) as img:
        assert img.read(0, 8) == b"basebase"


def test_backing_chain_past_the_bound_is_qcow2_error(tmp_path: Path) -> None:
    top = chain(tmp_path, qcow2.MAX_BACKING_DEPTH + 1)
    before = open_fds()
    with pytest.raises(Qcow2Error, match="backing"):
        qcow2.open(top)
    if before is not None:
        assert open_fds() == before, "file descriptors leaked by the failed open"
    with pytest.raises(Qcow2Error):
        qcow2.convert(top, tmp_path / "out.raw")
    assert not (tmp_path / "out.raw").exists()


@pytest.mark.parametrize("fmt", [None, "qcow2"])
def test_self_referencing_backing_is_qcow2_error(tmp_path: Path, fmt: Optional[str]) -> None:
    path = tmp_path / "loop.qcow2"
    save(Qcow2Writer(CS, backing_file="loop.qcow2", backing_format=fmt), path)
    before = open_fds()
    with pytest.raises(Qcow2Error):
        qcow2.open(path)
    if before is not None:
        assert open_fds() == before
    # info, like qemu-img info, does not open the backing chain: the loop is not its concern.
    assert qcow2.info(path)["backing-filename"] == "loop.qcow2"


def test_two_images_backing_each_other_is_qcow2_error(tmp_path: Path) -> None:
    save(Qcow2Writer(CS, backing_file="b.qcow2"), tmp_path / "a.qcow2")
    save(Qcow2Writer(CS, backing_file="a.qcow2"), tmp_path / "b.qcow2")
    with pytest.raises(Qcow2Error):
        qcow2.open(tmp_path / "a.qcow2")


def test_missing_backing_file_is_an_image_cache_error(tmp_path: Path) -> None:
    path = tmp_path / "orphan.qcow2"
    save(Qcow2Writer(CS, backing_file="gone.raw"), path)
    with pytest.raises(ImageCacheError, match="gone.raw"):
        qcow2.open(path)


# -- concurrency ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["deflate", "zstd"])
def test_concurrent_reads_on_one_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    # image.py documents that one Image may be read from several threads at once. 512-byte
    # clusters give one L2 table per 64 clusters, and a cache of 4 tables makes the threads
    # evict each other's tables all the time.
    from pyimagecache.qcow2 import image as image_module

    monkeypatch.setattr(image_module, "_L2_CACHE_BYTES", 4 * 512)
    cs = 512
    backing = random.Random(12).randbytes(1200 * cs)
    (tmp_path / "base.raw").write_bytes(backing)
    w = mixed(seed=6, clusters=1200, cluster_bits=9, compression=codec)  # ~19 L2 tables
    w.backing_file = "base.raw"
    w.backing_format = "raw"
    built = w.build()
    path = tmp_path / "t.qcow2"
    built.save(path)
    expected = built.expected(backing)
    threads = 8
    barrier = threading.Barrier(threads)

    def worker(seed: int) -> List[Tuple[int, int]]:
        rng = random.Random(seed)
        bad: List[Tuple[int, int]] = []
        barrier.wait(timeout=10)
        for _ in range(200):
            off = rng.randrange(w.virtual_size)
            n = rng.randrange(1, min(w.virtual_size - off, 70 * cs) + 1)
            if img.read(off, n) != expected[off : off + n]:
                bad.append((off, n))
        return bad

    with qcow2.open(path) as img, ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(worker, range(threads)))
        assert img.read(0, w.virtual_size) == expected
    assert results == [[]] * threads


def test_peak_memory_is_bounded_with_2mib_clusters_and_8_workers(tmp_path: Path) -> None:
    # Each worker holds about four clusters of buffers; with 2 MiB clusters the converter runs
    # fewer workers than asked, so peak RSS stays under the 64 MiB bar.
    import subprocess
    import sys

    rng = random.Random(7)
    cs = 2 << 20
    w = Qcow2Writer(24 * cs, cluster_bits=21)
    for c in range(24):
        half = rng.randbytes(cs // 2)
        w[c] = Compressed(half + half[: cs // 4] + bytes(cs // 4))
    src, dst = tmp_path / "big.qcow2", tmp_path / "big.raw"
    expected = save(w, src)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across exec.
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("peak RSS read from /proc/self/status (Linux)")
    code = (
        "import sys; from pyimagecache import qcow2; "
        "qcow2.convert(sys.argv[1], sys.argv[2], workers=8); "
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(src), str(dst)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    peak_kib = int(out)
    assert peak_kib < 64 * 1024, f"peak RSS {peak_kib} KiB"
    assert dst.read_bytes() == expected


def test_info_does_not_need_the_backing_file(tmp_path: Path) -> None:
    # As with qemu-img info: the metadata is the image's own; only reading needs the chain.
    w = Qcow2Writer(4 * 4096, cluster_bits=12, backing_file="gone.raw", backing_format="raw")
    w[1] = Data(b"\x07" * 4096)
    src = tmp_path / "top.qcow2"
    save(w, src)
    facts = qcow2.info(src)
    assert facts["backing-filename"] == "gone.raw"
    assert facts["full-backing-filename"] == str(tmp_path / "gone.raw")
    assert facts["allocation"]["data"] == 4096
    assert facts["allocation"]["unallocated"] == 3 * 4096
    with pytest.raises(Qcow2Error, match="gone.raw"):
        qcow2.open(src)
