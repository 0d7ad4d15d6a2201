"""Differential tests against qemu-img 7.2: static and dynamic VDIs made by ``qemu-img
convert``/``create`` and written by qemu-io convert to exactly the bytes ``qemu-img convert -O
raw`` gives, allocating no more than it plus one block, and describe() agrees with ``qemu-img
info``. Also checks that qemu reads what tests/vdiwriter.py writes as the writer says."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import require_tool
from diskdiff import MiB, differential, qemu_io, run, source_raw
from vdiwriter import BLOCK, ZERO, VdiWriter

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    require_tool("qemu-img")
    require_tool("qemu-io")


@pytest.mark.parametrize("static", ["off", "on"])
@pytest.mark.parametrize("size", [5 * MiB + 12345, 7 * MiB, 512, 3 * MiB + 512])
def test_convert_from_raw(tmp_path: Path, static: str, size: int) -> None:
    raw = source_raw(tmp_path / "src.raw", size, seed=size)
    image = tmp_path / "disk.vdi"
    run("qemu-img", "convert", "-f", "raw", "-O", "vdi", "-o", f"static={static}", str(raw),
        str(image))  # fmt: skip
    info = differential(image, "vdi", tmp_path, our_format="vdi")
    assert info["virtual-size"] == -(-size // 512) * 512


@pytest.mark.parametrize("static", ["off", "on"])
def test_qemu_io_writes_zeroes_and_discards(tmp_path: Path, static: str) -> None:
    image = tmp_path / "disk.vdi"
    run("qemu-img", "create", "-q", "-f", "vdi", "-o", f"static={static}", str(image), "9M")
    qemu_io(image, "vdi", [
        "write -P 0xab 1M 64k", "write -z 2M 1M", "discard 3M 64k", "write -P 0x11 7M 1536",
        "write -P 0x22 5M 4k", "write -P 0x33 3M 512",
    ])  # fmt: skip
    differential(image, "vdi", tmp_path, our_format="vdi")


def test_dynamic_over_4gib(tmp_path: Path) -> None:
    image = tmp_path / "big.vdi"
    run("qemu-img", "create", "-q", "-f", "vdi", str(image), "5G")
    qemu_io(image, "vdi", ["write -P 0x5a 0 64k", "write -P 0xa5 4500M 1M", "write -P 1 5119M 4k"])
    differential(image, "vdi", tmp_path, our_format="vdi")


def test_writer_images_read_by_qemu(tmp_path: Path) -> None:
    rng = random.Random(3)
    w = VdiWriter(5 * BLOCK + 1000, order=[4, 0, 2])
    for index in (0, 2, 4):
        w[index] = rng.randbytes(BLOCK)
    w[1] = ZERO
    image = tmp_path / "w.vdi"
    image.write_bytes(w.build().data)
    run("qemu-img", "check", "-f", "vdi", str(image))
    ref = tmp_path / "ref.raw"
    run("qemu-img", "convert", "-f", "vdi", "-O", "raw", str(image), str(ref))
    assert ref.read_bytes() == w.expected()
    ref.unlink()
    differential(image, "vdi", tmp_path, our_format="vdi")
