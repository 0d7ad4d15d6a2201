"""The content digest (pyimagecache/contentdigest.py) against an independent reference: the
recompute snippet of its docstring, written out here as a user would; regions, zero regions,
the short last region, any changed byte, ``add`` in any order from threads, ``feed`` in chunks
of any size with gaps and with the sparse writer's runs, files with holes, misuse refused. Also
the converter's task plan (region-aligned, never splitting a compressed unit) and the runs
``write_sparse`` reports."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyimagecache._sparse import write_sparse
from pyimagecache.contentdigest import (
    REGION,
    ContentDigest,
    file_content_digest,
    regions_with_data,
)
from pyimagecache.converter import TASK_BYTES, _Plan
from pyimagecache.diskimage import DiskImage
from pyimagecache.errors import DigestError, ImageCacheError

SMALL = settings(max_examples=40, deadline=None)


def reference(raw: bytes, region: int = REGION) -> str:
    """The definition, as README's recompute snippet states it."""
    outer = hashlib.sha256()
    for index in range(-(-len(raw) // region)):
        data = raw[index * region : (index + 1) * region]
        if data != bytes(len(data)):
            outer.update(index.to_bytes(8, "little") + zlib.crc32(data).to_bytes(4, "little"))
    return "crc32-1m:" + outer.hexdigest()


def sparse_raw(rng: random.Random, size: int) -> bytearray:
    """Data in some regions, zeros in others, regions partly data, data across boundaries."""
    raw = bytearray(size)
    for _ in range(rng.randrange(0, 8)):
        start = rng.randrange(size) if size else 0
        n = min(size - start, rng.choice([1, 511, 4096, 70_000, REGION, 3 * REGION // 2]))
        raw[start : start + n] = rng.randbytes(n)
    return raw


def by_adding(raw: bytes, order: Optional[List[int]] = None) -> str:
    d = ContentDigest(len(raw))
    indices = list(range(-(-len(raw) // REGION)))
    for index in order if order is not None else indices:
        d.add(index, raw[index * REGION : (index + 1) * REGION])
    return d.finish()


def test_the_definition() -> None:
    a = b"\x01" * 10 + bytes(REGION - 10)  # region 0: partly data
    b = bytes(REGION)  # region 1: zeros, contributes nothing
    c = b"tail"  # region 2: the short last region
    raw = a + b + c
    outer = hashlib.sha256()
    outer.update((0).to_bytes(8, "little") + zlib.crc32(a).to_bytes(4, "little"))
    outer.update((2).to_bytes(8, "little") + zlib.crc32(c).to_bytes(4, "little"))
    expected = "crc32-1m:" + outer.hexdigest()
    assert ContentDigest.of(raw) == expected == reference(raw) == by_adding(raw)


def test_zero_regions_contribute_nothing_and_empty_is_the_empty_hash() -> None:
    empty = "crc32-1m:" + hashlib.sha256(b"").hexdigest()
    assert ContentDigest.of(b"") == empty
    assert ContentDigest.of(bytes(5 * REGION + 3)) == empty
    one = bytearray(4 * REGION)
    one[2 * REGION + 7] = 1
    assert ContentDigest.of(one) == reference(bytes(one)) != empty


def test_the_short_last_region_is_hashed_with_its_own_length() -> None:
    raw = bytes(REGION) + b"x" * 100
    assert ContentDigest.of(raw) == reference(raw)
    # the same bytes followed by zeros in that last region: a different region, another digest
    assert ContentDigest.of(raw + bytes(100)) != ContentDigest.of(raw)


@SMALL
@given(seed=st.integers(0, 2**32), size=st.integers(0, 4 * REGION + 5000))
def test_every_way_in_agrees_with_the_definition(seed: int, size: int) -> None:
    rng = random.Random(seed)
    raw = bytes(sparse_raw(rng, size))
    want = reference(raw)
    assert ContentDigest.of(raw) == want
    order = list(range(-(-size // REGION)))
    rng.shuffle(order)
    assert by_adding(raw, order) == want
    # feed: chunks of odd sizes, some skipped entirely when zero (holes)
    d = ContentDigest()
    pos = 0
    while pos < size:
        n = rng.choice([1, 3, 4095, 4096, 65537, REGION - 1, REGION + 1])
        chunk = raw[pos : pos + n]
        if chunk.count(0) != len(chunk) or rng.random() < 0.5:
            d.feed(pos, chunk)
        pos += len(chunk)
    assert d.finish(size) == want


@SMALL
@given(seed=st.integers(0, 2**32), size=st.integers(1, 3 * REGION), data=st.data())
def test_any_changed_byte_changes_the_digest(seed: int, size: int, data: st.DataObject) -> None:
    raw = sparse_raw(random.Random(seed), size)
    before = ContentDigest.of(raw)
    at = data.draw(st.integers(0, size - 1))
    new = data.draw(st.integers(0, 255).filter(lambda v: v != raw[at]))
    raw[at] = new
    assert ContentDigest.of(raw) != before
    assert ContentDigest.of(raw) == reference(bytes(raw))


def test_a_region_turned_zero_changes_the_digest() -> None:
    raw = bytearray(3 * REGION)
    raw[REGION] = 9
    raw[2 * REGION] = 9
    before = ContentDigest.of(raw)
    raw[REGION] = 0
    assert ContentDigest.of(raw) != before


def test_add_from_threads_in_any_order() -> None:
    rng = random.Random(5)
    raw = bytes(sparse_raw(rng, 40 * REGION + 17))
    count = -(-len(raw) // REGION)
    d = ContentDigest(len(raw))
    order = list(range(count))
    rng.shuffle(order)

    def work(part: List[int]) -> None:
        for i in part:
            d.add(i, memoryview(raw)[i * REGION : (i + 1) * REGION])

    threads = [threading.Thread(target=work, args=(order[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d.finish() == reference(raw)


def test_settle_folds_in_order_and_frees_memory() -> None:
    raw = bytes(sparse_raw(random.Random(3), 6 * REGION))
    d = ContentDigest(len(raw))
    for i in (3, 1, 0, 2):
        d.add(i, raw[i * REGION : (i + 1) * REGION] or b"\x01")
    d.settle(4)
    assert not d._pending
    with pytest.raises(DigestError, match="region 2 was given twice"):
        d.add(2, b"\x01" * REGION)
    d.add(5, raw[5 * REGION :] or b"\x01" * REGION)
    d.add(4, raw[4 * REGION : 5 * REGION] or b"\x01" * REGION)


def test_feed_with_runs_skips_the_scan_and_agrees() -> None:
    rng = random.Random(11)
    raw = bytes(sparse_raw(rng, 5 * REGION + 4096 * 3))
    scanned, told = ContentDigest(), ContentDigest()
    for pos in range(0, len(raw), 700_001):
        chunk = raw[pos : pos + 700_001]
        runs: List[Tuple[int, int]] = []
        with open(os.devnull, "wb") as null:
            write_sparse(null.fileno(), pos, chunk, runs=runs)
        scanned.feed(pos, chunk)
        told.feed(pos, chunk, runs)
    assert scanned.finish(len(raw)) == told.finish(len(raw)) == reference(raw)


def test_file_content_digest_skips_holes(tmp_path: Path) -> None:
    rng = random.Random(2)
    raw = sparse_raw(rng, 9 * REGION + 1234)
    raw[0:4096] = b"\xaa" * 4096
    path = tmp_path / "d.raw"
    with open(path, "wb") as f:
        f.truncate(len(raw))
        write_sparse(f.fileno(), 0, raw)
    written = tmp_path / "dense.raw"
    written.write_bytes(raw)  # the same bytes with the zeros written out
    want = reference(bytes(raw))
    assert file_content_digest(path) == file_content_digest(written) == want
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    assert file_content_digest(empty) == ContentDigest.of(b"")
    hole = tmp_path / "hole.raw"
    with open(hole, "wb") as f:
        f.truncate(3 * REGION)
    assert file_content_digest(hole) == ContentDigest.of(b"")
    with pytest.raises(FileNotFoundError):
        file_content_digest(tmp_path / "missing.raw")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: d.add(0, b"x" * (REGION + 1)), "a region is 1 to"),
        (lambda d: d.add(-1, b"x"), "a region is 1 to"),
        (lambda d: d.add(0, b"x" * 10), "region 0 of a 3145738-byte disk has 1048576"),
        (lambda d: d.add(3, b"x" * 11), "region 3 of a 3145738-byte disk has 10 bytes"),
        (lambda d: d.add(4, b"x"), "region 4 of a 3145738-byte disk has -"),
        (lambda d: d.feed(3 * REGION + 5, b"123456"), "pass the end"),
        (lambda d: d.set_size(7), "the size was given as 3145738 bytes, now as 7"),
        (lambda d: d.finish(4), "the size was given"),
    ],
)
def test_misuse_is_refused(call, match: str) -> None:  # type: ignore[no-untyped-def]
    d = ContentDigest(3 * REGION + 10)
    with pytest.raises(DigestError, match=match) as info:
        call(d)
    assert isinstance(info.value, ImageCacheError)


def test_misuse_without_a_size() -> None:
    d = ContentDigest()
    d.feed(100, b"x")
    with pytest.raises(DigestError, match="in order"):
        d.feed(50, b"y")
    with pytest.raises(DigestError, match="past the end"):
        d.finish(50)
    with pytest.raises(DigestError, match="needs the disk's size"):
        ContentDigest().finish()
    d = ContentDigest()
    d.add(0, b"short")
    with pytest.raises(DigestError, match="follows the short"):
        d.add(1, b"x" * REGION)
    with pytest.raises(DigestError, match="has 1048576 bytes, 5 were given"):
        d.finish(2 * REGION)
    d = ContentDigest()
    d.add(2, b"x" * REGION)
    with pytest.raises(DigestError, match="it is the last region"):
        d.finish(2 * REGION + 10)
    d = ContentDigest(REGION)
    assert d.finish() == d.finish() == d.finish(REGION)
    with pytest.raises(DigestError, match="after finish"):
        d.add(0, b"x" * REGION)


def test_regions_with_data() -> None:
    runs = [(0, 1), (5, 9), (REGION - 1, REGION + 1), (5 * REGION, 7 * REGION)]
    assert list(regions_with_data(runs)) == [0, 1, 5, 6]
    assert list(regions_with_data([])) == []


@SMALL
@given(seed=st.integers(0, 2**32), offset=st.integers(0, 3 * 4096))
def test_write_sparse_runs_hold_every_nonzero_byte(seed: int, offset: int) -> None:
    rng = random.Random(seed)
    data = bytes(sparse_raw(rng, rng.randrange(1, 300_000)))
    runs: List[Tuple[int, int]] = []
    with open(os.devnull, "wb") as null:
        written = write_sparse(null.fileno(), offset, data, runs=runs)
    assert written == sum(e - s for s, e in runs)
    inside = bytearray(len(data))
    last = offset
    for s, e in runs:
        assert last <= s < e <= offset + len(data)
        last = e
        inside[s - offset : e - offset] = data[s - offset : e - offset]
    assert bytes(inside) == data


# -- the converter's plan ---------------------------------------------------------------------


class _Shape(DiskImage):
    def __init__(self, size: int, granularity: int) -> None:
        self.virtual_size = size
        self.granularity = granularity


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    granularity=st.sampled_from([512, 4096, 65536, 131072, REGION, 2 * REGION, 4 * REGION]),
    compressed=st.booleans(),
    digest=st.booleans(),
)
def test_plan_cuts_cover_the_data_and_respect_every_boundary(
    data: st.DataObject, granularity: int, compressed: bool, digest: bool
) -> None:
    unit = granularity
    size = data.draw(st.integers(1, 40)) * unit - data.draw(st.sampled_from([0, 0, 1, 511]))
    # extents on unit boundaries (as every reader's are), the last one maybe short
    cuts = sorted(set(data.draw(st.lists(st.integers(0, -(-size // unit)), max_size=12))))
    bounds = [0] + [min(size, c * unit) for c in cuts] + [size]
    ranges = []
    for i, (s, e) in enumerate(zip(bounds, bounds[1:])):
        if s < e and data.draw(st.booleans()):
            # a DATA extent may also be any run of sectors when nothing is compressed
            if not compressed and i % 2:
                s = min(e - 1, s + data.draw(st.integers(0, 3)) * 512)
            ranges.append((s, e))
    plan = _Plan(_Shape(size, granularity), compressed, digest)
    tasks = list(plan.cut(iter(ranges)))
    assert sum(d for _, _, d in tasks) == sum(e - s for s, e in ranges)
    covered = 0
    last_end = -1
    for start, end, inside in tasks:
        assert last_end <= start < end <= size
        last_end = end
        assert inside == sum(max(0, min(e, end) - max(s, start)) for s, e in ranges)
        assert end - start <= plan.step
        if compressed:  # never split a unit
            assert start % unit == 0 and (end % unit == 0 or end == size)
        if digest:  # whole regions
            assert start % REGION == 0 and (end % REGION == 0 or end == size)
        covered += end - start
    for s, e in ranges:  # every data byte is inside a task (tasks are disjoint)
        assert sum(max(0, min(e, end) - max(s, start)) for start, end, _ in tasks) == e - s
    if not digest:  # nothing but the data is read
        assert covered == sum(e - s for s, e in ranges)


def test_plan_reads_a_region_shared_by_two_extents_once() -> None:
    img = _Shape(6422017, 131072)  # a qcow2 with 128 KiB clusters, two compressed ones
    ranges = [(3276800, 3407872), (4063232, 4325376)]
    tasks = list(_Plan(img, compressed=True, digest=True).cut(iter(ranges)))
    assert tasks == [(3 * REGION, 4 * REGION, 2 * 131072), (4 * REGION, 5 * REGION, 131072)]


def test_workers_are_capped_only_for_large_compressed_units() -> None:
    img = _Shape(1 << 40, 32 << 20)
    assert _Plan(img, compressed=False, digest=False).fit_workers(8) == 8
    assert _Plan(img, compressed=False, digest=True).fit_workers(8) == 8
    assert _Plan(img, compressed=True, digest=False).fit_workers(8) == 1
    two = _Shape(1 << 30, 2 << 20)
    assert _Plan(two, compressed=True, digest=True).fit_workers(8) == 3
    assert _Plan(two, compressed=True, digest=True).step == 2 * TASK_BYTES
    assert _Plan(two, compressed=False, digest=True).step == TASK_BYTES


def test_the_readme_snippet_recomputes_the_recorded_value(tmp_path: Path) -> None:
    """README's "The content digest of a cached raw" tells users how to recompute the value;
    run that very code on a sparse file."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### The content digest of a cached raw", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    raw = tmp_path / "d.raw"
    with open(raw, "wb") as f:
        f.write(b"boot")
        f.seek(3 * REGION + 5)
        f.write(b"data" * 1000)
        f.truncate(7 * REGION + 100)
    assert namespace["content_digest"](str(raw)) == file_content_digest(raw)
