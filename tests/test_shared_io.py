"""The shared I/O building blocks: atomic publish, the file lock, sparse writes, throttling."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyimagecache import _sparse
from pyimagecache._atomic import atomic_output
from pyimagecache._lock import FileLock
from pyimagecache._progress import Throttle
from pyimagecache._sparse import BLOCK, WritebackPacer, is_zero, write_sparse
from pyimagecache.cachefiles import STALE_GLOB


def test_atomic_output_publishes_complete_file(tmp_path: Path) -> None:
    dst = tmp_path / "disk.raw"
    with atomic_output(dst) as tmp:
        tmp.write_bytes(b"new")
        assert not dst.exists()
        assert tmp.parent == dst.parent
    assert dst.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [dst]


def test_atomic_output_keeps_existing_dst_on_error(tmp_path: Path) -> None:
    dst = tmp_path / "disk.raw"
    dst.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(dst) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert dst.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [dst]


def test_stale_glob_matches_temp_siblings(tmp_path: Path) -> None:
    dst = tmp_path / "disk.raw"
    with pytest.raises(RuntimeError), atomic_output(dst) as tmp:
        tmp.write_bytes(b"x")
        assert list(tmp_path.glob(STALE_GLOB)) == [tmp]
        raise RuntimeError


def test_file_lock_excludes_threads(tmp_path: Path) -> None:
    lock_path = tmp_path / "entry.lock"
    inside = 0
    peak = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, peak
        with FileLock(lock_path):
            with guard:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.02)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1


def test_file_lock_excludes_processes_and_dies_with_holder(tmp_path: Path) -> None:
    lock_path = tmp_path / "entry.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pyimagecache._lock import FileLock\n"
            f"l = FileLock({str(lock_path)!r}); l.acquire(); print('held', flush=True);"
            " time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        got = threading.Event()

        def take() -> None:
            with FileLock(lock_path):
                got.set()

        t = threading.Thread(target=take, daemon=True)
        t.start()
        assert not got.wait(0.3), "lock taken while another process holds it"
        holder.kill()  # a killed holder must not leave a stale lock
        assert got.wait(10)
    finally:
        holder.kill()
        holder.wait()


def _allocated_blocks(fd: int) -> int:
    return os.fstat(fd).st_blocks * 512


def test_write_sparse_skips_zero_blocks(tmp_path: Path) -> None:
    path = tmp_path / "out"
    data = bytearray(16 * BLOCK)
    data[5 * BLOCK + 7] = 1
    data[6 * BLOCK] = 2  # blocks 5 and 6 adjacent: one coalesced write
    data[12 * BLOCK - 1] = 3
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, len(data))
        assert write_sparse(fd, 0, bytes(data)) == 3 * BLOCK
        assert os.pread(fd, len(data), 0) == bytes(data)
        assert _allocated_blocks(fd) <= 3 * BLOCK + 8192
    finally:
        os.close(fd)


@settings(max_examples=60, deadline=None)
@given(
    offset=st.integers(0, 3 * BLOCK),
    pieces=st.lists(
        st.tuples(st.integers(0, 3 * BLOCK), st.integers(0, 255)), min_size=0, max_size=8
    ),
    length=st.integers(0, 5 * BLOCK),
)
def test_write_sparse_reproduces_data_at_any_alignment(
    tmp_path_factory: pytest.TempPathFactory, offset: int, pieces: list, length: int
) -> None:
    data = bytearray(length)
    for pos, value in pieces:
        if pos < length:
            data[pos] = value
    path = tmp_path_factory.mktemp("sparse") / "out"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, offset + length)
        written = write_sparse(fd, offset, memoryview(data))
        assert os.pread(fd, length, offset) == bytes(data)
        assert written <= length
        if not any(data):
            assert written == 0
    finally:
        os.close(fd)


def test_writeback_pacer_advises_only_the_span_written_since_last_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list = []
    monkeypatch.setattr(_sparse, "start_writeback", lambda *args: calls.append(args))
    pacer = WritebackPacer(7, every=100)
    pacer.wrote(60, 1000)
    pacer.wrote(30, 500)  # out of order, as the converter's workers finish
    assert calls == []
    pacer.wrote(20, 2000)
    assert calls == [(7, 500, 1520)]  # from the lowest offset to the end of the highest write
    pacer.wrote(99, 0)
    pacer.wrote(1, 99)
    assert calls[1:] == [(7, 0, 100)]
    pacer.wrote(150)  # a writer that does not say where: the whole file
    assert calls[2:] == [(7,)]


def test_is_zero() -> None:
    assert is_zero(b"")
    assert is_zero(bytes(3 << 20))
    assert not is_zero(bytes(3 << 20) + b"\x01")
    assert not is_zero(b"\x01" + bytes(5))


def test_throttle_limits_rate_and_always_sends_final() -> None:
    calls: list = []
    throttle = Throttle(lambda d, t: calls.append((d, t)), interval=3600)
    for i in range(1000):
        throttle(i, 1000)
    throttle(1000, 1000, final=True)
    assert calls == [(0, 1000), (1000, 1000)]
    Throttle(None)(1, 2)  # no callback: a no-op
