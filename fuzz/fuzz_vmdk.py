"""atheris harness: arbitrary bytes as a VMDK (sparse extent or descriptor) through
``vmdk.open_image`` / extents / read / ``convert_image``.

Only VmdkError may escape the library; a failed convert must leave no file behind, a successful
one a raw file of the virtual size that agrees with ``read``. The input is written as
``in.vmdk`` next to ``flat.img`` (8 KiB), which descriptor seeds name as a FLAT extent.
``check_one`` is also what tests/test_vmdk_fuzz_corpus.py replays, without atheris.

Run (see fuzz/README.md)::

    python fuzz/fuzz_vmdk.py /tmp/vmdk-fuzz fuzz/corpus/vmdk -max_total_time=300
"""

from __future__ import annotations

import os
import shutil
import sys

# Images above this virtual size are opened and read, but not converted.
CONVERT_LIMIT = 256 << 20
READ_LIMIT = 1 << 20
EXTENT_LIMIT = 100_000
FLAT = bytes(range(256)) * 32


def check_one(data: bytes, workdir: str) -> None:
    """Feed ``data`` to the reader and the converter; raise AssertionError on any misbehaviour.

    Example::

        check_one(open("fuzz/corpus/vmdk/sparse.vmdk", "rb").read(), tempfile.mkdtemp())
    """
    from pyimagecache.converter import ConvertOptions, convert_image
    from pyimagecache.errors import VmdkError
    from pyimagecache.sourcefile import SourceFile
    from pyimagecache.vmdk import open_image

    src = os.path.join(workdir, "in.vmdk")
    outdir = os.path.join(workdir, "out")
    dst = os.path.join(outdir, "out.raw")
    with open(src, "wb") as f:
        f.write(data)
    with open(os.path.join(workdir, "flat.img"), "wb") as f:
        f.write(FLAT)
    shutil.rmtree(outdir, ignore_errors=True)
    os.mkdir(outdir)

    head = b""
    size = -1
    try:
        with open_image(SourceFile.open(src)) as img:
            size = img.virtual_size
            assert size >= 0, f"negative virtual size {size}"
            end = 0
            for i, ext in enumerate(img.extents()):
                assert ext.offset == end, f"extent {i} starts at {ext.offset}, expected {end}"
                assert ext.length > 0, f"extent {i} has length {ext.length}"
                assert ext.kind in ("data", "compressed", "zero", "unallocated"), ext.kind
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
    except VmdkError:
        size = -1

    if size > CONVERT_LIMIT:
        return
    try:
        with open_image(SourceFile.open(src)) as img:
            convert_image(img, dst, ConvertOptions(workers=2))
    except VmdkError:
        assert os.listdir(outdir) == [], f"failed convert left {os.listdir(outdir)}"
        return
    assert size >= 0, "convert accepted an image that open/read rejected"
    assert os.path.getsize(dst) == size, f"raw is {os.path.getsize(dst)} bytes, virtual {size}"
    with open(dst, "rb") as f:
        assert f.read(len(head)) == head, "convert and read disagree"


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import diskcheck

    diskcheck.fuzz_main("pyimagecache.vmdk", check_one)
