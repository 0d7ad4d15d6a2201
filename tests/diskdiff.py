"""Differential checks against qemu-img shared by the format suites (tests/test_*_qemu.py):
convert with both tools, compare bytes with cmp (never a whole large
file in memory), allocation no more than qemu's plus one block, and describe() against
``qemu-img info --output=json``."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any, Dict, Sequence, Set

import pytest

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.opener import image_info, open_image

MiB = 1 << 20


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}{proc.stdout}"
    return proc.stdout


def qemu_io(image: Path, fmt: str, cmds: Sequence[str]) -> None:
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    run(*args, str(image))


def source_raw(path: Path, size: int, seed: int = 0, largest: int = 300_000) -> Path:
    """A disk with what cloud images hold: incompressible runs, text and zero holes (written
    sparse), in pieces of up to ``largest`` bytes."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        while pos < size:
            n = min(size - pos, rng.choice([512, 4096, 65536, largest]))
            pick = rng.random()
            if pick < 0.35:
                f.seek(pos)
                f.write(rng.randbytes(n))
            elif pick < 0.6:
                f.seek(pos)
                f.write(((b"cloud-init %d\n" % rng.randrange(10**6)) * (n // 18 + 1))[:n])
            pos += n
    return path


def qemu_info(image: Path, fmt: str) -> Dict[str, Any]:
    info: Dict[str, Any] = json.loads(
        run("qemu-img", "info", "-f", fmt, "--output=json", str(image))
    )
    return info


def data_blocks(path: Path, block: int) -> Set[int]:
    """Indices of the ``block``-sized blocks holding data (SEEK_DATA/SEEK_HOLE)."""
    found: Set[int] = set()
    fd = os.open(path, os.O_RDONLY)
    try:
        size, pos = os.fstat(fd).st_size, 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            found.update(range(start // block, -(-pos // block)))
    finally:
        os.close(fd)
    return found


def differential(image: Path, fmt: str, tmp_path: Path, *, our_format: str) -> Dict[str, Any]:
    """Convert ``image`` with qemu-img -f ``fmt`` and with our reader; assert identical bytes,
    allocation within one block of qemu's, and describe() equal to qemu-img info on the fields
    both give, with qemu's format name (``img.format`` is ``our_format``). Returns our info."""
    ref, ours = tmp_path / "qemu.raw", tmp_path / "ours.raw"
    for p in (ref, ours):
        if p.exists():
            p.unlink()
    run("qemu-img", "convert", "-f", fmt, "-O", "raw", str(image), str(ref))
    with open_image(image) as img:
        assert img.format == our_format
        convert_image(img, ours, ConvertOptions(workers=2))
        info = image_info(img)
    proc = subprocess.run(["cmp", str(ref), str(ours)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{image.name}: {proc.stdout}{proc.stderr}")
    theirs = qemu_info(image, fmt)
    block = theirs.get("cluster-size", 4096)
    fd = os.open(ref, os.O_RDONLY)
    try:
        os.fsync(fd)  # qemu-img does not flush; settle delayed allocation before st_blocks
    finally:
        os.close(fd)
    fs_block = os.stat(ours).st_blksize
    extra = data_blocks(ours, fs_block) - data_blocks(ref, fs_block)
    assert len(extra) * fs_block <= max(block, fs_block), sorted(extra)[:10]
    ours_alloc, ref_alloc = os.stat(ours).st_blocks * 512, os.stat(ref).st_blocks * 512
    assert ours_alloc <= ref_alloc + max(block, fs_block), (ours_alloc, ref_alloc)
    expected = dict(theirs)  # qemu-img's format name too ("vpc" for VHD)
    expected.pop("actual-size")  # the image file's, stat'ed at different moments: compare below
    got = {k: v for k, v in info.items() if k not in ("allocation", "actual-size")}
    assert got == expected
    assert info["actual-size"] == os.stat(image).st_blocks * 512
    for p in (ref, ours):
        p.unlink()
    return info
