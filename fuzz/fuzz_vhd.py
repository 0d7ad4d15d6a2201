"""atheris harness: arbitrary bytes through the VHD reader (open, extents, read, convert).

Only VhdError may escape (see fuzz/diskcheck.py); ``check_one`` is also what
tests/test_vhd_fuzz_corpus.py replays, without atheris. Run (see fuzz/README.md)::

    python fuzz/fuzz_vhd.py /tmp/vhd-fuzz fuzz/corpus/vhd -max_total_time=300
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diskcheck  # noqa: E402


def check_one(data: bytes, workdir: str) -> None:
    from pyimagecache.errors import VhdError
    from pyimagecache.vhd import open_image

    diskcheck.check_one(data, workdir, ".vhd", open_image, (VhdError,))


if __name__ == "__main__":
    diskcheck.fuzz_main("pyimagecache.vhd", check_one)
