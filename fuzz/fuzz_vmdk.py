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
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diskcheck  # noqa: E402

FLAT = bytes(range(256)) * 32


def check_one(data: bytes, workdir: str) -> None:
    """Feed ``data`` to the reader and the converter; raise AssertionError on any misbehaviour.

    Example::

        check_one(open("fuzz/corpus/vmdk/sparse.vmdk", "rb").read(), tempfile.mkdtemp())
    """
    from pyimagecache.errors import VmdkError
    from pyimagecache.sourcefile import SourceFile
    from pyimagecache.vmdk import open_image

    src, outdir = diskcheck.write_input(data, workdir, "in.vmdk")
    with open(os.path.join(workdir, "flat.img"), "wb") as f:
        f.write(FLAT)
    diskcheck.check_image(
        src,
        outdir,
        lambda path: open_image(SourceFile.open(path)),
        (VmdkError,),
        diskcheck.ALL_KINDS,
    )


if __name__ == "__main__":
    diskcheck.fuzz_main("pyimagecache.vmdk", check_one)
