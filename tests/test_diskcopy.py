"""copy_disk: extend, equal, shrink refused (dst untouched), size 0, holes kept, both copy paths."""

from __future__ import annotations

import fcntl
import os
import random
from pathlib import Path
from typing import List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyimagecache.diskcopy import CopyStrategy, copy_disk, parse_size
from pyimagecache.errors import DiskCopyError

MiB = 1 << 20


def make_sparse(path: Path, size: int, pieces: List[Tuple[int, bytes]]) -> bytes:
    buf = bytearray(size)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in pieces:
            data = data[: max(0, size - offset)]
            f.seek(offset)
            f.write(data)
            buf[offset : offset + len(data)] = data
    return bytes(buf)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture(params=["copy_file_range", "read", "read-no-seek-data"])
def method(request: pytest.FixtureRequest) -> CopyStrategy:
    name: str = request.param
    if name == "copy_file_range":
        if not hasattr(os, "copy_file_range"):
            pytest.skip("no os.copy_file_range on this platform")
        return CopyStrategy(methods=("copy_file_range", "read"))
    return CopyStrategy(methods=("read",), seek_data=name != "read-no-seek-data")


@pytest.fixture
def src(tmp_path: Path) -> Tuple[Path, bytes]:
    rng = random.Random(7)
    path = tmp_path / "base.raw"
    content = make_sparse(
        path,
        64 * MiB,
        [
            (0, rng.randbytes(4096)),
            (10 * MiB, rng.randbytes(3 * MiB + 17)),
            (63 * MiB, rng.randbytes(MiB)),
        ],
    )
    return path, content


def test_size_zero_is_plain_copy_keeping_holes(
    tmp_path: Path, src: Tuple[Path, bytes], method: CopyStrategy
) -> None:
    path, content = src
    dst = tmp_path / "vm.raw"
    assert copy_disk(path, dst, strategy=method) == dst
    assert dst.read_bytes() == content
    if allocated(path) < 32 * MiB:  # the filesystem keeps holes at all
        assert allocated(dst) <= allocated(path) * 1.05 + 64 * 1024
    assert not list(tmp_path.glob(".*"))  # no temporary sibling left


def test_extend_is_sparse(tmp_path: Path, src: Tuple[Path, bytes], method: CopyStrategy) -> None:
    path, content = src
    dst = tmp_path / "vm.raw"
    copy_disk(path, dst, size=20 << 30, strategy=method)
    assert dst.stat().st_size == 20 << 30
    with open(dst, "rb") as f:
        assert f.read(len(content)) == content
        f.seek((20 << 30) - 4096)
        assert f.read() == bytes(4096)
    assert allocated(dst) < 16 * MiB


def test_equal_size(tmp_path: Path, src: Tuple[Path, bytes]) -> None:
    path, content = src
    dst = tmp_path / "vm.raw"
    copy_disk(path, dst, size=len(content))
    assert dst.read_bytes() == content


def test_replaces_existing_destination(tmp_path: Path, src: Tuple[Path, bytes]) -> None:
    path, content = src
    dst = tmp_path / "vm.raw"
    dst.write_bytes(b"old" * 100_000)
    copy_disk(path, dst)
    assert dst.read_bytes() == content


@pytest.mark.parametrize("existing", [False, True])
def test_shrink_refused_before_dst_touched(
    tmp_path: Path, src: Tuple[Path, bytes], existing: bool
) -> None:
    path, content = src
    dst = tmp_path / "vm.raw"
    if existing:
        dst.write_bytes(b"keep me")
        os.utime(dst, ns=(1, 1))
    with pytest.raises(DiskCopyError, match="smaller than the source"):
        copy_disk(path, dst, size=len(content) - 1)
    if existing:
        assert dst.read_bytes() == b"keep me" and dst.stat().st_mtime_ns == 1
    else:
        assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["base.raw"] + (["vm.raw"] if existing else [])
    )


def test_bad_sources_and_destinations(tmp_path: Path, src: Tuple[Path, bytes]) -> None:
    path, _ = src
    with pytest.raises(DiskCopyError, match="cannot read"):
        copy_disk(tmp_path / "missing.raw", tmp_path / "d")
    with pytest.raises(DiskCopyError, match="not a regular file"):
        copy_disk(tmp_path, tmp_path / "d")
    with pytest.raises(DiskCopyError, match="directory"):
        copy_disk(path, tmp_path)
    with pytest.raises(DiskCopyError, match="same file"):
        copy_disk(path, path)
    with pytest.raises(DiskCopyError, match="positive"):
        copy_disk(path, tmp_path / "d", size=-1)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("sync", [False, True])
def test_sync_flushes_file_and_directory_only_when_asked(
    tmp_path: Path, src: Tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch, sync: bool
) -> None:
    path, content = src
    dst = tmp_path / "vm.raw"
    flushed: List[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc") else "?")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    # On macOS the flush is F_FULLFSYNC (tests/test_platform.py); here, the fsync path.
    monkeypatch.delattr(fcntl, "F_FULLFSYNC", raising=False)
    copy_disk(path, dst, sync=sync)
    assert dst.read_bytes() == content
    if not sync:
        assert flushed == []
    else:
        assert len(flushed) == 2  # the copy before its rename, then the directory
        if os.path.isdir("/proc"):
            assert ".vm.raw.tmp-" in flushed[0] and flushed[1] == str(tmp_path)


def test_empty_source(tmp_path: Path) -> None:
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    copy_disk(empty, tmp_path / "d", size=MiB)
    assert (tmp_path / "d").read_bytes() == bytes(MiB)


@settings(deadline=None, max_examples=25)
@given(
    size=st.integers(0, 2 * MiB),
    pieces=st.lists(
        st.tuples(st.integers(0, 2 * MiB), st.binary(min_size=1, max_size=9000)), max_size=6
    ),
    grow=st.integers(0, MiB),
    use_cfr=st.booleans(),
)
def test_copy_roundtrip(
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    pieces: List[Tuple[int, bytes]],
    grow: int,
    use_cfr: bool,
) -> None:
    work = tmp_path_factory.mktemp("cp")
    content = make_sparse(work / "s", size, pieces)
    methods = (
        ("copy_file_range", "read") if use_cfr and hasattr(os, "copy_file_range") else ("read",)
    )
    copy_disk(
        work / "s",
        work / "d",
        size=size + grow if grow else 0,
        strategy=CopyStrategy(methods=methods),
    )
    assert (work / "d").read_bytes() == content + bytes(grow)


def test_copy_file_range_unsupported_falls_back(
    tmp_path: Path, src: Tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    if not hasattr(os, "copy_file_range"):  # macOS, or --hide-linux-calls: read instead
        with pytest.raises(ValueError, match="not available on this platform"):
            CopyStrategy(methods=("copy_file_range", "read"))
        assert CopyStrategy().methods == ("read",)
        return
    calls = []

    def refuse(*args: object) -> int:
        calls.append(args)
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    path, content = src
    copy_disk(path, tmp_path / "d", strategy=CopyStrategy(methods=("copy_file_range", "read")))
    assert calls and (tmp_path / "d").read_bytes() == content


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("20G", 20 << 30),
        ("512M", 512 << 20),
        ("512MiB", 512 << 20),
        ("1T", 1 << 40),
        ("4096", 4096),
        ("10k", 10 << 10),
        ("3GB", 3 << 30),
        (" 7 ", 7),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "1.5G", "-1", "G", "20X", "20 G B", "0x10"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(DiskCopyError, match="invalid size"):
        parse_size(text)
