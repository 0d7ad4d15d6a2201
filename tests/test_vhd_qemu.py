"""Differential tests against qemu-img 7.2 (which calls VHD "vpc"): fixed and dynamic images
made by ``qemu-img convert``/``create`` and written by qemu-io convert to exactly the bytes
``qemu-img convert -O raw`` gives, allocating no more than it plus one block, and describe()
agrees with ``qemu-img info``. Also checks that qemu reads what tests/vhdwriter.py writes as
the writer says, so the writer-based suites test real VHDs."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from conftest import require_tool
from diskdiff import MiB, differential, qemu_info, qemu_io, run, source_raw
from vhdwriter import Block, VhdWriter, refresh_checksum

from pyimagecache.errors import VhdCorruptError, VhdUnsupportedError
from pyimagecache.opener import open_image

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    require_tool("qemu-img")
    require_tool("qemu-io")


@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
@pytest.mark.parametrize("force_size", ["off", "on"])
@pytest.mark.parametrize("size", [5 * MiB + 12345, 7 * MiB, 3 * MiB + 512])
def test_convert_from_raw(tmp_path: Path, subformat: str, force_size: str, size: int) -> None:
    raw = source_raw(tmp_path / "src.raw", size, seed=size)
    image = tmp_path / "disk.vhd"
    run("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o",
        f"subformat={subformat},force_size={force_size}", str(raw), str(image))  # fmt: skip
    info = differential(image, "vpc", tmp_path, our_format="vhd")
    # qemu rounds the size up to a CHS geometry unless force_size=on (then to a sector).
    rounded = -(-size // 512) * 512
    if force_size == "on":
        assert info["virtual-size"] == rounded
    else:
        assert info["virtual-size"] >= rounded


def test_qemu_io_writes_zeroes_and_discards(tmp_path: Path) -> None:
    image = tmp_path / "disk.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", str(image), "9M")
    qemu_io(image, "vpc", [
        "write -P 0xab 1M 64k", "write -z 2M 1M", "discard 3M 64k", "write -P 0x11 5M 1536",
        "write -P 0x22 8M 4k", "write -P 0x33 3M 512",
    ])  # fmt: skip
    differential(image, "vpc", tmp_path, our_format="vhd")


def test_dynamic_over_4gib(tmp_path: Path) -> None:
    image = tmp_path / "big.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", str(image), "5G")
    qemu_io(image, "vpc", ["write -P 0x5a 0 64k", "write -P 0xa5 4500M 1M", "write -P 1 5000M 4k"])
    info = differential(image, "vpc", tmp_path, our_format="vhd")
    assert info["virtual-size"] > (5 << 30) - 16 * MiB


def test_fixed_over_4gib(tmp_path: Path) -> None:
    image = tmp_path / "big.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed,force_size=on",
        str(image), "4100M")  # fmt: skip
    qemu_io(image, "vpc", ["write -P 0x5a 0 64k", "write -P 0xa5 4099M 1M"])
    differential(image, "vpc", tmp_path, our_format="vhd")


@pytest.mark.parametrize("creator", [b"vpc ", b"qemu", b"qem2", b"win ", b"d2v ", b"CTXS",
                                     b"tap\0", b"xyz "])  # fmt: skip
@pytest.mark.parametrize("chs", [None, (65535, 16, 255)])
def test_virtual_size_rule_matches_qemu(tmp_path: Path, creator: bytes, chs: object) -> None:
    """CHS geometry or current_size, by creator app and maximum geometry, as qemu decides."""
    w = VhdWriter(3 * MiB + 4096, block_size=1 << 20, creator=creator, chs=chs)  # type: ignore[arg-type]
    w[0] = Block(b"first")
    w[3] = Block(b"last")
    built = w.build()
    for at in (0, len(built.data) - 512):  # current_size a little larger than the geometry
        struct.pack_into(">Q", built.data, at + 48, 3 * MiB + 5 * 4096)
        refresh_checksum(built.data, at)
    image = tmp_path / "disk.vhd"
    image.write_bytes(built.data)
    expected = qemu_info(image, "vpc")["virtual-size"]
    with open_image(image) as img:
        assert img.virtual_size == expected
    differential(image, "vpc", tmp_path, our_format="vhd")


@pytest.mark.parametrize("block_size", [4096, 1 << 16, 1 << 21])
def test_writer_images_read_by_qemu(tmp_path: Path, block_size: int) -> None:
    rng = random.Random(block_size)
    w = VhdWriter(6 * block_size, block_size=block_size, order=[4, 0, 2], gap_sectors=1)
    for index in (0, 2, 4):
        w[index] = Block(rng.randbytes(block_size))
    image = tmp_path / "w.vhd"
    image.write_bytes(w.build().data)
    differential(image, "vpc", tmp_path, our_format="vhd")
    assert (tmp_path / "w.vhd").read_bytes()  # untouched
    ref = tmp_path / "ref.raw"
    run("qemu-img", "convert", "-f", "vpc", "-O", "raw", str(image), str(ref))
    assert ref.read_bytes() == w.expected()


def test_bad_checksum_refused_like_qemu(tmp_path: Path) -> None:
    w = VhdWriter(1 * MiB, block_size=4096)
    data = w.build().data
    data[64] ^= 1
    image = tmp_path / "bad.vhd"
    image.write_bytes(data)
    proc = __import__("subprocess").run(
        ["qemu-img", "info", "-f", "vpc", str(image)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "checksum" in proc.stderr
    with pytest.raises(VhdCorruptError, match="checksum"):
        open_image(image)


def test_differencing_refused_naming_parent(tmp_path: Path) -> None:
    base = tmp_path / "base.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", str(base), "4M")
    w = VhdWriter(4 * MiB, block_size=1 << 21, disk_type=4, parent_name="C:\\base-ü.vhd")
    image = tmp_path / "child.vhd"
    image.write_bytes(w.build().data)
    with pytest.raises(VhdUnsupportedError, match=r"differencing .*base-ü\.vhd"):
        open_image(image)
