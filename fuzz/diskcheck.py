"""What every fuzz harness (and the replay tests) shares: the checks of one input
(:func:`check_image`) and the atheris entry point (:func:`fuzz_main`).

One input: open it with the format's reader, walk its extents (in order, contiguous, covering
the virtual size), read its first MiB and last 4 KiB, describe it, and convert it. Only the
format's own errors may escape; a failed convert must leave nothing in its output directory,
a successful one a raw file of the virtual size that agrees with ``read``.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Tuple, Type

# Images whose virtual size is above this are opened and read, but not converted.
CONVERT_LIMIT = 256 << 20
READ_LIMIT = 1 << 20
EXTENT_LIMIT = 100_000

Opener = Callable[..., object]


#: Extent kinds a format without compression may report.
PLAIN_KINDS = ("data", "zero", "unallocated")
ALL_KINDS = ("data", "compressed", "zero", "unallocated")


def check_image(
    src: str,
    outdir: str,
    opener: Opener,
    errors: Tuple[Type[BaseException], ...],
    kinds: Tuple[str, ...] = PLAIN_KINDS,
    convert: Optional[Callable[[str, str], object]] = None,
) -> None:
    """Every harness's checks of one input file ``src``: open it with ``opener``, walk its
    extents (in order, contiguous, covering the virtual size, of ``kinds``), read its first
    MiB and last 4 KiB and describe it; then convert it into ``outdir`` (default: opened again
    and through ``convert_image``). Only ``errors`` may escape; a failed convert must leave
    ``outdir`` empty, a successful one a raw file of the virtual size that agrees with
    ``read``. Raise AssertionError (or let an unexpected exception escape) otherwise."""
    from pyimagecache.converter import ConvertOptions, convert_image

    for name in os.listdir(outdir):
        os.unlink(os.path.join(outdir, name))
    dst = os.path.join(outdir, "out.raw")
    head = b""
    size = -1
    try:
        with opener(src) as img:  # type: ignore[attr-defined]
            size = img.virtual_size
            assert size >= 0, f"negative virtual size {size}"
            end = 0
            for i, ext in enumerate(img.extents()):
                assert ext.offset == end, f"extent {i} starts at {ext.offset}, expected {end}"
                assert ext.length > 0, f"extent {i} has length {ext.length}"
                assert ext.kind in kinds, ext.kind
                end = ext.offset + ext.length
                if i >= EXTENT_LIMIT:
                    end = -1
                    break
            if end != -1:
                assert end == size, f"extents cover {end} of {size} bytes"
            head = img.read(0, min(size, READ_LIMIT))
            assert len(head) == min(size, READ_LIMIT), "short read"
            if size > READ_LIMIT:
                assert len(img.read(size - 4096, 4096)) == 4096, "short read at the end"
            img.describe()
    except errors:
        size = -1
    if size > CONVERT_LIMIT:
        return
    try:
        if convert is not None:
            convert(src, dst)
        else:
            with opener(src) as img:  # type: ignore[attr-defined]
                convert_image(img, dst, ConvertOptions(workers=2))
    except errors:
        assert os.listdir(outdir) == [], f"failed convert left {os.listdir(outdir)}"
        return
    assert size >= 0, "convert accepted an image that open/read rejected"
    assert os.path.getsize(dst) == size, f"raw is {os.path.getsize(dst)} bytes, virtual {size}"
    with open(dst, "rb") as f:
        assert f.read(len(head)) == head, "convert and read disagree"


def write_input(data: bytes, workdir: str, name: str) -> Tuple[str, str]:
    """``data`` written as ``workdir/name``; returns it and an output directory beside it."""
    src = os.path.join(workdir, name)
    with open(src, "wb") as f:
        f.write(data)
    outdir = os.path.join(workdir, "out")
    os.makedirs(outdir, exist_ok=True)
    return src, outdir


def check_one(
    data: bytes, workdir: str, suffix: str, opener: Opener, errors: Tuple[Type[Exception], ...]
) -> None:
    """:func:`check_image` for a format read from one file opened with ``opener``."""
    from pyimagecache.sourcefile import SourceFile

    src, outdir = write_input(data, workdir, "in" + suffix)
    check_image(src, outdir, lambda path: opener(SourceFile.open(path)), errors)


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
