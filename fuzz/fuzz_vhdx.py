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

CONVERT_LIMIT = 256 << 20
READ_LIMIT = 1 << 20
EXTENT_LIMIT = 100_000
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
    from pyimagecache.converter import ConvertOptions, convert_image
    from pyimagecache.errors import VhdxError
    from pyimagecache.vhdx import open_image

    src = os.path.join(workdir, "in.vhdx")
    dst = os.path.join(workdir, "out.raw")
    with open(src, "wb") as f:
        f.write(data)
    if os.path.exists(dst):
        os.unlink(dst)
    head = b""
    size = -1
    try:
        with open_image(src) as img:
            size = img.virtual_size
            assert size >= 0, f"negative virtual size {size}"
            end = 0
            for i, ext in enumerate(img.extents()):
                assert ext.offset == end, f"extent {i} starts at {ext.offset}, expected {end}"
                assert ext.length > 0, f"extent {i} has length {ext.length}"
                assert ext.kind in ("data", "zero", "unallocated"), ext.kind
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
    except VhdxError:
        size = -1
    if size > CONVERT_LIMIT:
        return
    try:
        with open_image(src) as img:
            convert_image(img, dst, ConvertOptions(workers=2))
    except VhdxError:
        assert not os.path.exists(dst), "failed convert left a file at dst"
        assert sorted(os.listdir(workdir)) == ["in.vhdx"], os.listdir(workdir)
        return
    assert size >= 0, "convert accepted an image that open/read rejected"
    assert os.path.getsize(dst) == size, f"raw is {os.path.getsize(dst)} bytes, virtual {size}"
    with open(dst, "rb") as f:
        assert f.read(len(head)) == head, "convert and read disagree"
    os.unlink(dst)


def check_one(data: bytes, workdir: str) -> None:
    """Feed ``data``, and ``data`` with its checksums repaired, to the reader and converter;
    raise AssertionError on any misbehaviour."""
    check_raw(data, workdir)
    fixed = with_checksums(data)
    if fixed != data:
        check_raw(fixed, workdir)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import diskcheck

    diskcheck.fuzz_main("pyimagecache.vhdx", check_one)
