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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diskcheck  # noqa: E402


def check_one(data: bytes, workdir: str) -> None:
    """Feed ``data`` to the reader and the converter; raise AssertionError on any misbehaviour.

    Example::

        check_one(open("fuzz/corpus/v3-deflate.qcow2", "rb").read(), tempfile.mkdtemp())
    """
    from pyimagecache import qcow2
    from pyimagecache.errors import MissingExtraError, Qcow2Error

    src, outdir = diskcheck.write_input(data, workdir, "in.qcow2")
    diskcheck.check_image(
        src,
        outdir,
        qcow2.open,
        (Qcow2Error, MissingExtraError),
        diskcheck.ALL_KINDS,
        convert=lambda s, d: qcow2.convert(s, d, workers=2),  # the qcow2 package's own entry
    )


if __name__ == "__main__":
    diskcheck.fuzz_main("pyimagecache.qcow2", check_one)
