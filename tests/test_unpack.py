"""Format detection and streaming decompression / tar unpacking into sparse files."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import random
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
from ensureenv import tar_members
from hypothesis import given, settings
from hypothesis import strategies as st

from pyimagecache import formats
from pyimagecache.errors import ConversionError, ExternalReferenceError
from pyimagecache.unpack import unpack

zstandard = pytest.importorskip("zstandard")

Compressor = Callable[[bytes], bytes]
COMPRESSORS: Dict[str, Compressor] = {
    "xz": lambda b: lzma.compress(b),
    "gzip": lambda b: gzip.compress(b, compresslevel=1),
    # The zstd CLI writes frame checksums by default; without one, corruption is undetectable.
    "zstd": lambda b: zstandard.ZstdCompressor(write_checksum=True).compress(b),
}


def sparse_image(size: int, pieces: List[Tuple[int, bytes]]) -> bytes:
    buf = bytearray(size)
    for offset, data in pieces:
        buf[offset : offset + len(data)] = data[: max(0, size - offset)]
    return bytes(buf)


def tar_bytes(members: List[Tuple[str, bytes]], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    return tar_members(members, fmt)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture
def image() -> bytes:
    rng = random.Random(4)
    return sparse_image(
        8 << 20, [(0, b"\xeb\x63\x90" + rng.randbytes(509)), (5 << 20, rng.randbytes(70000))]
    )


def test_detect_magic() -> None:
    assert formats.detect(b"QFI\xfb\x00\x00\x00\x03") == formats.QCOW2
    assert formats.detect(lzma.compress(b"x")) == formats.XZ
    assert formats.detect(gzip.compress(b"x")) == formats.GZIP
    assert formats.detect(zstandard.ZstdCompressor().compress(b"x")) == formats.ZSTD
    assert formats.detect(tar_bytes([("disk.raw", b"x")])[:512]) == formats.TAR
    assert formats.detect(tar_bytes([("d", b"")], fmt=tarfile.GNU_FORMAT)[:512]) == formats.TAR
    assert formats.detect(b"") == formats.RAW
    assert formats.detect(b"\xeb\x63\x90" + bytes(509)) == formats.RAW


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_compressed_raw_becomes_sparse_raw(tmp_path: Path, image: bytes, codec: str) -> None:
    src = tmp_path / "disk.bin"
    src.write_bytes(COMPRESSORS[codec](image))
    dst = tmp_path / "out.raw"
    calls: List[Tuple[int, Optional[int]]] = []
    assert unpack(src, dst, progress=lambda d, t: calls.append((d, t))) == formats.RAW
    assert dst.read_bytes() == image
    assert allocated(dst) < 256 << 10  # 8 MiB apparent, ~70 KiB of data
    assert calls and calls[-1] == (src.stat().st_size, src.stat().st_size)


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_compressed_tar_with_one_disk(tmp_path: Path, image: bytes, codec: str, fmt: int) -> None:
    data = tar_bytes([("./", b""), ("README", b"hello"), ("disk.raw", image)], fmt=fmt)
    src = tmp_path / "disk.tar.x"
    src.write_bytes(COMPRESSORS[codec](data))
    dst = tmp_path / "out.raw"
    assert unpack(src, dst) == formats.RAW
    assert dst.read_bytes() == image


def test_plain_tar(tmp_path: Path, image: bytes) -> None:
    src = tmp_path / "a.tar"
    src.write_bytes(tar_bytes([("images/root.img", image)]))
    assert unpack(src, tmp_path / "o") == formats.RAW
    assert (tmp_path / "o").read_bytes() == image


def test_gnu_sparse_tar_made_by_gnu_tar(tmp_path: Path, image: bytes) -> None:
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("no tar")
    work = tmp_path / "w"
    work.mkdir()
    disk = work / "disk.raw"
    with open(disk, "wb") as f:  # holes, as Debian's build leaves them
        f.truncate(len(image))
        f.seek(0)
        f.write(image[:512])
        f.seek(5 << 20)
        f.write(image[5 << 20 : (5 << 20) + 70000])
    for flags in (["--format=gnu"], ["--format=posix"]):
        out = tmp_path / "d.tar.xz"
        subprocess.run(
            [tar, *flags, "--sparse", "-cJf", str(out), "-C", str(work), "disk.raw"], check=True
        )
        assert unpack(out, tmp_path / "o") == formats.RAW
        assert (tmp_path / "o").read_bytes() == image


def test_compressed_qcow2_payload_reported(tmp_path: Path) -> None:
    payload = b"QFI\xfb" + bytes(1020)
    src = tmp_path / "x.qcow2.xz"
    src.write_bytes(lzma.compress(payload))
    assert unpack(src, tmp_path / "o") == formats.QCOW2
    assert (tmp_path / "o").read_bytes() == payload


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("a.raw", b"1"), ("b.img", b"2")], "more than one disk image"),
        ([("README", b"x"), ("notes.txt", b"y")], "no disk image"),
        ([("boot/", b""), ("boot/vmlinuz", b"k")], "no disk image"),
        ([("disk.raw", lzma.compress(b"x"))], "nested"),
    ],
)
def test_tar_needs_exactly_one_disk(
    tmp_path: Path, members: List[Tuple[str, bytes]], match: str
) -> None:
    src = tmp_path / "x.tar.gz"
    src.write_bytes(gzip.compress(tar_bytes(members)))
    with pytest.raises(ConversionError, match=match) as info:
        unpack(src, tmp_path / "o")
    assert "x.tar.gz" in str(info.value)


def _hostile_tar(member: tarfile.TarInfo, with_disk: bool = True) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        if with_disk:
            disk = tarfile.TarInfo("disk.raw")
            disk.size = 4096
            tar.addfile(disk, io.BytesIO(b"\xeb" + bytes(4095)))
        tar.addfile(member)
    return out.getvalue()


def _member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    ("member", "says", "reference"),
    [
        (_member("extra", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link", "/etc/passwd"),
        (_member("extra", tarfile.LNKTYPE, "../../x"), "hard link", "../../x"),
        (_member("dev", tarfile.CHRTYPE), "device or FIFO", "dev"),
        (_member("blk", tarfile.BLKTYPE), "device or FIFO", "blk"),
        (_member("fifo", tarfile.FIFOTYPE), "device or FIFO", "fifo"),
        (_member("../escape", tarfile.DIRTYPE), "leaves the archive", "../escape"),
        (_member("/abs", tarfile.DIRTYPE), "leaves the archive", "/abs"),
        (_member("a/../../b", tarfile.DIRTYPE), "leaves the archive", "a/../../b"),
    ],
    ids=["symlink", "hardlink", "chr", "blk", "fifo", "dotdot", "absolute", "nested-dotdot"],
)
def test_an_archive_with_a_link_device_or_escaping_path_is_refused(
    tmp_path: Path, member: tarfile.TarInfo, says: str, reference: str
) -> None:
    src = tmp_path / "x.tar"
    src.write_bytes(_hostile_tar(member))
    with pytest.raises(ExternalReferenceError, match=says) as caught:
        unpack(src, tmp_path / "o")
    assert caught.value.reference == reference and caught.value.source == "x.tar"


def test_symlink_named_like_a_disk_is_not_a_disk(tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        link = tarfile.TarInfo("disk.raw")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    src = tmp_path / "l.tar"
    src.write_bytes(out.getvalue())
    with pytest.raises(
        ExternalReferenceError, match="'disk.raw' is a symbolic link to '/etc/passwd'"
    ):
        unpack(src, tmp_path / "o")


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
@pytest.mark.parametrize("tarred", [False, True])
def test_truncated_input_is_a_clear_error(
    tmp_path: Path, image: bytes, codec: str, tarred: bool
) -> None:
    payload = tar_bytes([("disk.raw", image)]) if tarred else image
    data = COMPRESSORS[codec](payload)
    src = tmp_path / "t"
    src.write_bytes(data[: len(data) - 9])
    with pytest.raises(ConversionError, match="truncated|corrupt"):
        unpack(src, tmp_path / "o")


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_corrupt_input_is_a_clear_error(tmp_path: Path, image: bytes, codec: str) -> None:
    data = bytearray(COMPRESSORS[codec](image))
    for i in range(20, min(len(data), 400)):
        data[i] ^= 0x5A
    src = tmp_path / "c"
    src.write_bytes(bytes(data))
    with pytest.raises(ConversionError, match=codec):
        unpack(src, tmp_path / "o")


def test_truncated_tar_member(tmp_path: Path, image: bytes) -> None:
    data = tar_bytes([("disk.raw", image)])
    src = tmp_path / "t.tar"
    src.write_bytes(data[: 512 + 4096])
    with pytest.raises(ConversionError, match="truncated|corrupt"):
        unpack(src, tmp_path / "o")


def test_raw_input_refused(tmp_path: Path) -> None:
    src = tmp_path / "r"
    src.write_bytes(bytes(1024))
    with pytest.raises(ConversionError, match="not a compressed file"):
        unpack(src, tmp_path / "o")


@settings(deadline=None, max_examples=25)
@given(
    size=st.integers(0, 300_000),
    pieces=st.lists(
        st.tuples(st.integers(0, 300_000), st.binary(min_size=1, max_size=5000)), max_size=5
    ),
    codec=st.sampled_from(sorted(COMPRESSORS)),
    tarred=st.booleans(),
)
def test_roundtrip(
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    pieces: List[Tuple[int, bytes]],
    codec: str,
    tarred: bool,
) -> None:
    image = sparse_image(size, pieces)
    if formats.detect(image[:512]) != formats.RAW:
        return
    payload = tar_bytes([("disk.raw", image)]) if tarred else image
    work = tmp_path_factory.mktemp("rt")
    src = work / "s"
    src.write_bytes(COMPRESSORS[codec](payload))
    assert unpack(src, work / "o") == formats.RAW
    assert (work / "o").read_bytes() == image
