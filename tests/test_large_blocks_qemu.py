"""Large allocation units against qemu-img: VHDX with 16 MiB blocks (qemu-img's default for a
3 GiB disk) and 32 MiB (Hyper-V's default), made by ``qemu-img convert -o block_size=`` and by
``qemu-img create`` followed by ``qemu-img convert -n`` (which allocates every block), and qcow2
with 2 MiB clusters, plain and compressed: our conversion is byte-identical to qemu-img's with
and without the content digest, and the digest the converter computed is the digest of
qemu-img's output. Every worker reads such images (only compressed units shape the tasks)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
from conftest import require_tool
from diskdiff import run, source_raw

from pyimagecache.contentdigest import ContentDigest, file_content_digest
from pyimagecache.converter import ConvertOptions, _measure, _Plan, convert_image
from pyimagecache.opener import open_image

pytestmark = pytest.mark.qemu
MiB = 1 << 20


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    require_tool("qemu-img")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 MiB: data, text and holes in pieces of up to 300 kB, plus 1 MiB zero-written."""
    path = source_raw(tmp_path_factory.mktemp("src") / "src.raw", 80 * MiB + 7 * 512, seed=18)
    with open(path, "r+b") as f:
        f.seek(40 * MiB)
        f.write(bytes(MiB))
    return path


def same(a: Path, b: Path) -> None:
    proc = subprocess.run(["cmp", str(a), str(b)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def check(image: Path, tmp_path: Path, raw: Path) -> None:
    ref = tmp_path / "qemu.raw"
    run("qemu-img", "convert", "-O", "raw", str(image), str(ref))
    same(ref, raw)
    with open_image(image) as img:
        _, _, compressed = _measure(img)
        plan = _Plan(img, compressed, digest=True)
        if not compressed:
            assert plan.fit_workers(8) == 8 and plan.step == MiB
    for workers in (1, 2, 4):
        plain, digested = tmp_path / f"p{workers}.raw", tmp_path / f"d{workers}.raw"
        with open_image(image) as img:
            convert_image(img, plain, ConvertOptions(workers=workers))
        digest = ContentDigest()
        with open_image(image) as img:
            convert_image(img, digested, ConvertOptions(workers=workers, digest=digest))
        same(plain, ref)
        same(digested, ref)
        assert digest.finish() == file_content_digest(ref)
        plain.unlink()
        digested.unlink()


@pytest.mark.parametrize("block_size", ["16M", "32M"])
def test_vhdx_large_blocks_by_convert(tmp_path: Path, raw: Path, block_size: str) -> None:
    image = tmp_path / "d.vhdx"
    opts = f"subformat=dynamic,block_size={block_size}"
    run("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", opts, str(raw), str(image))
    with open_image(image) as img:
        assert img.block_size == int(block_size[:-1]) * MiB  # type: ignore[attr-defined]
    check(image, tmp_path, raw)


@pytest.mark.parametrize("block_size", ["16M", "32M"])
def test_vhdx_large_blocks_by_create_then_convert(
    tmp_path: Path, raw: Path, block_size: str
) -> None:
    image = tmp_path / "d.vhdx"
    size = str(raw.stat().st_size)
    run(
        "qemu-img", "create", "-q", "-f", "vhdx", "-o", f"block_size={block_size}", str(image), size
    )
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "vhdx", str(raw), str(image))
    with open_image(image) as img:
        kinds: List[str] = sorted({e.kind for e in img.extents()})
    assert kinds == ["data"]  # -n writes every block, zeros included
    check(image, tmp_path, raw)


@pytest.mark.parametrize("compress", [False, True])
def test_qcow2_with_2_mib_clusters(tmp_path: Path, raw: Path, compress: bool) -> None:
    image = tmp_path / "d.qcow2"
    flags = ["-c"] if compress else []
    run(
        "qemu-img", "convert", "-f", "raw", "-O", "qcow2", *flags, "-o", "cluster_size=2M",
        str(raw), str(image),
    )  # fmt: skip
    check(image, tmp_path, raw)
