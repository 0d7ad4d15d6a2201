"""The checks shared by fuzz/fuzz_vhd.py and fuzz/fuzz_vdi.py (and their replay tests), and
the atheris entry point of every harness.

One input: open it with the format's reader, walk its extents (in order, contiguous, covering
the virtual size), read its first MiB and last 4 KiB, and convert it. Only the format's own
error may escape; a failed convert must leave nothing in the work directory, a successful one
a raw file of the virtual size that agrees with ``read``.
"""

from __future__ import annotations

import os
from typing import Callable, Tuple, Type

# Images whose virtual size is above this are opened and read, but not converted.
CONVERT_LIMIT = 256 << 20
READ_LIMIT = 1 << 20
EXTENT_LIMIT = 100_000

Opener = Callable[..., object]


def check_one(
    data: bytes, workdir: str, suffix: str, opener: Opener, errors: Tuple[Type[Exception], ...]
) -> None:
    """Raise AssertionError (or let an unexpected exception escape) on any misbehaviour."""
    from pyimagecache.converter import ConvertOptions, convert_image
    from pyimagecache.sourcefile import SourceFile

    src = os.path.join(workdir, "in" + suffix)
    dst = os.path.join(workdir, "out.raw")
    with open(src, "wb") as f:
        f.write(data)
    if os.path.exists(dst):
        os.unlink(dst)
    head = b""
    try:
        img = opener(SourceFile.open(src))
    except errors:
        return  # every check is made at open: nothing to convert
    with img:  # type: ignore[attr-defined]
        size = img.virtual_size  # type: ignore[attr-defined]
        assert size >= 0, f"negative virtual size {size}"
        end = 0
        for i, ext in enumerate(img.extents()):  # type: ignore[attr-defined]
            assert ext.offset == end, f"extent {i} starts at {ext.offset}, expected {end}"
            assert ext.length > 0, f"extent {i} has length {ext.length}"
            assert ext.kind in ("data", "zero", "unallocated"), ext.kind
            end = ext.offset + ext.length
            if i >= EXTENT_LIMIT:
                end = -1
                break
        if end != -1:
            assert end == size, f"extents cover {end} of {size} bytes"
        head = img.read(0, min(size, READ_LIMIT))  # type: ignore[attr-defined]
        assert len(head) == min(size, READ_LIMIT), "short read"
        if size > READ_LIMIT:
            assert len(img.read(size - 4096, 4096)) == 4096, "short read at the end"  # type: ignore[attr-defined]
        if size > CONVERT_LIMIT:
            return
        convert_image(img, dst, ConvertOptions(workers=2))  # type: ignore[arg-type]
    assert os.path.getsize(dst) == size, f"raw is {os.path.getsize(dst)} bytes, virtual {size}"
    with open(dst, "rb") as f:
        assert f.read(len(head)) == head, "convert and read disagree"


def fuzz_main(module: str, run_one: Callable[[bytes, str], None]) -> None:
    """Run atheris on ``run_one`` with ``module`` instrumented."""
    import importlib
    import shutil
    import sys
    import tempfile

    import atheris

    with atheris.instrument_imports():
        importlib.import_module(module)
        importlib.import_module("pyimagecache._blockmap")
    workdir = tempfile.mkdtemp(prefix="fuzz-")
    try:
        atheris.Setup(sys.argv, lambda data: run_one(data, workdir))
        atheris.Fuzz()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
