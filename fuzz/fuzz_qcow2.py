"""atheris harness: arbitrary bytes through qcow2.open / extents / read / convert.

Only Qcow2Error and MissingExtraError may escape the library; a failed convert must leave no
file behind, a successful one a raw file of the virtual size that agrees with ``read``.
``check_one`` is also what tests/test_fuzz_corpus.py replays, without atheris.

Run (see fuzz/README.md)::

    python fuzz/fuzz_qcow2.py fuzz/corpus -max_total_time=300
"""

from __future__ import annotations

import os
import sys

# Images whose virtual size is above this are opened and read, but not converted: a sparse
# multi-TiB output is legitimate, yet not what a fuzz iteration should spend time on.
CONVERT_LIMIT = 256 << 20
READ_LIMIT = 1 << 20
EXTENT_LIMIT = 100_000


def check_one(data: bytes, workdir: str) -> None:
    """Feed ``data`` to the reader and the converter; raise AssertionError on any misbehaviour.

    Example::

        check_one(open("fuzz/corpus/v3-deflate.qcow2", "rb").read(), tempfile.mkdtemp())
    """
    from pyimagecache import qcow2
    from pyimagecache.errors import MissingExtraError, Qcow2Error

    expected_errors = (Qcow2Error, MissingExtraError)
    src = os.path.join(workdir, "in.qcow2")
    dst = os.path.join(workdir, "out.raw")
    with open(src, "wb") as f:
        f.write(data)
    if os.path.exists(dst):
        os.unlink(dst)

    head = b""
    size = -1
    try:
        with qcow2.open(src) as img:
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
                tail = img.read(size - 4096, 4096)
                assert len(tail) == 4096, "short read at the end"
    except expected_errors:
        size = -1

    if size > CONVERT_LIMIT:
        return
    try:
        qcow2.convert(src, dst, workers=2)
    except expected_errors:
        assert not os.path.exists(dst), "failed convert left a file at dst"
        assert sorted(os.listdir(workdir)) == ["in.qcow2"], os.listdir(workdir)
        return
    assert size >= 0, "convert accepted an image that open/read rejected"
    assert os.path.getsize(dst) == size, f"raw is {os.path.getsize(dst)} bytes, virtual {size}"
    with open(dst, "rb") as f:
        assert f.read(len(head)) == head, "convert and read disagree"


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import diskcheck

    diskcheck.fuzz_main("pyimagecache.qcow2", check_one)
