"""atheris harness: arbitrary bytes through the VHDX reader (open, extents, read, convert).

Only VhdxError may escape the reader; a failed convert leaves no file behind, a successful one
a raw file of the virtual size that agrees with ``read``. Headers and region tables are
checksummed, so most mutations of them die at the CRC check: each input is also tried with
those checksums recomputed, which takes the fuzzer past them into the fields. ``check_one`` is
what tests/test_vhdx_fuzz_corpus.py replays, without atheris.

    python fuzz/make_corpus_vhdx.py
    mkdir -p /tmp/vhdx-fuzz && python fuzz/fuzz_vhdx.py /tmp/vhdx-fuzz fuzz/corpus/vhdx \\
        -max_total_time=300 -rss_limit_mb=1024 -timeout=20
"""

from __future__ import annotations

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import diskcheck  # noqa: E402

# (offset, size) of the structures whose CRC-32C sits at byte 4: headers, region tables
CHECKSUMMED = ((64 << 10, 4 << 10), (128 << 10, 4 << 10), (192 << 10, 64 << 10),
               (256 << 10, 64 << 10))  # fmt: skip


def with_checksums(data: bytes) -> bytes:
    """``data`` with the headers' and region tables' checksums recomputed."""
    from pyimagecache.vhdx.crc32c import checksum_with_field_zeroed

    buf = bytearray(data)
    for offset, size in CHECKSUMMED:
        if len(buf) >= offset + size:
            part = buf[offset : offset + size]
            struct.pack_into("<I", buf, offset + 4, checksum_with_field_zeroed(part, 4))
    return bytes(buf)


def check_raw(data: bytes, workdir: str) -> None:
    from pyimagecache.errors import VhdxError
    from pyimagecache.vhdx import open_image

    src, outdir = diskcheck.write_input(data, workdir, "in.vhdx")
    diskcheck.check_image(src, outdir, open_image, (VhdxError,))


def check_one(data: bytes, workdir: str) -> None:
    """Feed ``data``, and ``data`` with its checksums repaired, to the reader and converter;
    raise AssertionError on any misbehaviour."""
    check_raw(data, workdir)
    fixed = with_checksums(data)
    if fixed != data:
        check_raw(fixed, workdir)


if __name__ == "__main__":
    diskcheck.fuzz_main("pyimagecache.vhdx", check_one)
