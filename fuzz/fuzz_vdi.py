"""atheris harness: arbitrary bytes through the VDI reader (open, extents, read, convert).

Only VdiError may escape (see fuzz/diskcheck.py); ``check_one`` is also what
tests/test_vdi_fuzz_corpus.py replays, without atheris. Run (see fuzz/README.md)::

    python fuzz/fuzz_vdi.py /tmp/vdi-fuzz fuzz/corpus/vdi -max_total_time=300
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diskcheck  # noqa: E402


def check_one(data: bytes, workdir: str) -> None:
    from pyimagecache.errors import VdiError
    from pyimagecache.vdi import open_image

    diskcheck.check_one(data, workdir, ".vdi", open_image, (VdiError,))


if __name__ == "__main__":
    diskcheck.fuzz_main("pyimagecache.vdi", check_one)
