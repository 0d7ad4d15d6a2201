"""``convert``, ``info`` and ``open_image`` accept what ``ensure`` accepts from a file: OVA
packages, Vagrant boxes and xz/gzip/zstd/bzip2/tar wrappers, recognised by their bytes. The
disk inside converts to exactly what qemu-img makes of it, and the temporary file it is
unpacked into never outlives the call (or, for ``open_image``, the image)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
from conftest import require_tool
from diskdiff import qemu_info, source_raw
from ensureenv import tar_members
from test_ova import ovf

import pyimagecache
from pyimagecache import ContainerError, InsufficientSpaceError

MiB = 1 << 20
zstandard = pytest.importorskip("zstandard")

pytestmark = pytest.mark.qemu

STREAMS: Dict[str, Callable[[bytes], bytes]] = {
    "xz": lambda b: lzma.compress(b, preset=0),
    "gzip": lambda b: gzip.compress(b, compresslevel=1),
    "zstd": lambda b: zstandard.ZstdCompressor(write_checksum=True).compress(b),
    "bzip2": lambda b: bz2.compress(b, compresslevel=1),
}


def tar_of(members: List[Tuple[str, bytes]]) -> bytes:
    return tar_members(members, tarfile.USTAR_FORMAT)


class Disk:
    """A disk with data, holes and text (as cloud images hold), as raw and in the formats
    vendors ship it in, made by qemu-img."""

    def __init__(self, tmp: Path) -> None:
        self.qemu_img = require_tool("qemu-img")
        self.raw = source_raw(tmp / "disk.raw", 6 * MiB, seed=18)
        self.qcow2 = tmp / "disk.qcow2"
        self.vmdk = tmp / "disk.vmdk"
        self.vhd = tmp / "disk.vhd"
        self.run("convert", "-O", "qcow2", "-c", str(self.raw), str(self.qcow2))
        self.run(
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            str(self.raw),
            str(self.vmdk),
        )
        self.run("convert", "-O", "vpc", str(self.raw), str(self.vhd))

    def run(self, *args: str) -> None:
        subprocess.run([self.qemu_img, *args], check=True, capture_output=True)

    def qemu_raw(self, inner: Path, fmt: str, out: Path) -> Path:
        """What qemu-img converts the disk inside to."""
        self.run("convert", "-f", fmt, "-O", "raw", str(inner), str(out))
        return out


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Disk:
    return Disk(tmp_path_factory.mktemp("disk"))


def wrappers(disk: Disk) -> Dict[str, Tuple[bytes, Path, str]]:
    """name -> (the wrapped file's bytes, the disk inside, its qemu-img format)."""
    q = disk.qcow2.read_bytes()
    out: Dict[str, Tuple[bytes, Path, str]] = {}
    for name, pack in STREAMS.items():
        out[f"qcow2.{name}"] = (pack(q), disk.qcow2, "qcow2")
    out["raw.xz"] = (STREAMS["xz"](disk.raw.read_bytes()), disk.raw, "raw")
    out["vhd.gz"] = (STREAMS["gzip"](disk.vhd.read_bytes()), disk.vhd, "vpc")
    plain_tar = tar_of([("disk.qcow2", q)])
    out["tar"] = (plain_tar, disk.qcow2, "qcow2")
    for name, pack in STREAMS.items():
        out[f"tar.{name}"] = (pack(plain_tar), disk.qcow2, "qcow2")
    vmdk = disk.vmdk.read_bytes()
    out["ova"] = (
        tar_of(
            [
                ("appliance.ovf", ovf("appliance-disk1.vmdk")),
                ("appliance.mf", b"SHA256(appliance.ovf)= 00\n"),
                ("appliance-disk1.vmdk", vmdk),
            ]
        ),
        disk.vmdk,
        "vmdk",
    )
    out["box-virtualbox"] = (
        STREAMS["gzip"](
            tar_of(
                [
                    ("Vagrantfile", b""),
                    ("box.ovf", ovf("box-disk001.vmdk")),
                    ("box-disk001.vmdk", vmdk),
                    ("metadata.json", b'{"provider": "virtualbox"}'),
                ]
            )
        ),
        disk.vmdk,
        "vmdk",
    )
    out["box-libvirt"] = (
        STREAMS["gzip"](
            tar_of(
                [
                    ("metadata.json", b'{"provider": "libvirt", "format": "qcow2"}'),
                    ("Vagrantfile", b"Vagrant.configure('2') {}\n"),
                    ("box.img", q),
                ]
            )
        ),
        disk.qcow2,
        "qcow2",
    )
    return out


NAMES = [
    "qcow2.xz",
    "qcow2.gzip",
    "qcow2.zstd",
    "qcow2.bzip2",
    "raw.xz",
    "vhd.gz",
    "tar",
    "tar.xz",
    "tar.gzip",
    "tar.zstd",
    "tar.bzip2",
    "ova",
    "box-virtualbox",
    "box-libvirt",
]


def renamed(value: object, name: str) -> object:
    """``value`` with every "filename" set to ``name``, at any depth."""
    if isinstance(value, dict):
        return {k: name if k == "filename" else renamed(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, name) for v in value]
    return value


def cmp(a: Path, b: Path) -> None:
    proc = subprocess.run(["cmp", str(a), str(b)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", NAMES)
def test_convert_equals_qemu_img_on_the_disk_inside(disk: Disk, tmp_path: Path, name: str) -> None:
    blob, inner, fmt = wrappers(disk)[name]
    wrapped = tmp_path / f"src.{name}"
    wrapped.write_bytes(blob)
    out = tmp_path / "out" / "disk.raw"
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "convert", str(wrapped), str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc
    cmp(out, disk.qemu_raw(inner, fmt, tmp_path / "qemu.raw"))
    assert os.listdir(out.parent) == ["disk.raw"]  # the unpacked temporary is gone


@pytest.mark.parametrize("name", ["tar.xz", "ova", "vhd.gz", "raw.xz"])
def test_info_and_open_image_of_a_wrapped_disk(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    blob, inner, fmt = wrappers(disk)[name]
    wrapped = tmp_path / f"src.{name}"
    wrapped.write_bytes(blob)
    facts = pyimagecache.info(wrapped)
    theirs = qemu_info(inner, fmt)
    # The disk inside as qemu-img describes it; the file named and measured is the one given
    # (a VMDK's extents too).
    for key, value in theirs.items():
        if key not in ("filename", "actual-size"):
            assert renamed(facts[key], str(inner)) == renamed(value, str(inner)), key
    assert facts["filename"] == str(wrapped)
    assert facts["actual-size"] == os.stat(wrapped).st_blocks * 512
    assert facts["container"] in ("xz", "gzip", "tar")
    assert os.listdir(temp) == []
    expected = disk.qemu_raw(inner, fmt, tmp_path / "qemu.raw").read_bytes()
    with pyimagecache.open_image(wrapped) as img:
        assert img.read(0, img.virtual_size) == expected
        assert os.listdir(temp) == []  # unlinked at once: the space goes with the image
    proc = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "info", "--json", str(wrapped)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TMPDIR=str(temp)),
    )
    assert proc.returncode == 0, proc
    assert json.loads(proc.stdout)["format"] == fmt
    assert os.listdir(temp) == []


def test_a_corrupt_wrapper_leaves_nothing_beside_dst(disk: Disk, tmp_path: Path) -> None:
    blob, _, _ = wrappers(disk)["tar.xz"]
    wrapped = tmp_path / "cut.tar.xz"
    wrapped.write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out" / "disk.raw"
    out.parent.mkdir()
    with pytest.raises(ContainerError, match="truncated"):
        pyimagecache.convert(wrapped, out)
    assert os.listdir(out.parent) == []


def test_an_interrupted_unpack_leaves_nothing_beside_dst(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyimagecache.unpack

    real = pyimagecache.unpack.unpack

    def interrupted(src: object, dst: Path, **kw: object) -> str:
        real(src, dst, **kw)  # type: ignore[arg-type]
        assert dst.exists() and dst.parent == out.parent  # beside DST, same filesystem
        raise KeyboardInterrupt

    monkeypatch.setattr(pyimagecache.unpack, "unpack", interrupted)
    blob, _, _ = wrappers(disk)["qcow2.xz"]
    wrapped = tmp_path / "disk.qcow2.xz"
    wrapped.write_bytes(blob)
    out = tmp_path / "out" / "disk.raw"
    out.parent.mkdir()
    out.write_bytes(b"the old disk")
    with pytest.raises(KeyboardInterrupt):
        pyimagecache.convert(wrapped, out)
    assert os.listdir(out.parent) == ["disk.raw"] and out.read_bytes() == b"the old disk"


def test_too_little_room_to_unpack_is_said_before_writing(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pyimagecache._space.free_bytes", lambda path: 1000)
    blob, _, _ = wrappers(disk)["ova"]
    wrapped = tmp_path / "appliance.ova"
    wrapped.write_bytes(blob)
    out = tmp_path / "out" / "disk.raw"
    out.parent.mkdir()
    with pytest.raises(InsufficientSpaceError) as info:
        pyimagecache.convert(wrapped, out)
    assert info.value.needed == len(blob) and info.value.free == 1000
    assert "unpacking appliance.ova" in str(info.value)
    assert os.listdir(out.parent) == []
