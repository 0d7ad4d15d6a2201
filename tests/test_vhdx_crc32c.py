"""CRC-32C: RFC 3720's test vectors, the zero-run shortcut, continuation, and the installed
backend (google-crc32c or crc32c when present) agreeing with the table-driven one."""

from __future__ import annotations

import random

import pytest

from pyimagecache.vhdx.crc32c import (
    BACKEND,
    ZERO_RUN,
    checksum_with_field_zeroed,
    crc32c,
    crc32c_python,
)


def bitwise(data: bytes) -> int:
    c = 0xFFFFFFFF
    for byte in data:
        c ^= byte
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (b"123456789", 0xE3069283),
    ],
)
def test_rfc3720_vectors(data: bytes, expected: int) -> None:
    assert crc32c_python(data) == expected
    assert crc32c(data) == expected


def test_zero_runs_and_continuation_match_the_bitwise_definition() -> None:
    rng = random.Random(5)
    for n in (0, 1, 7, 8, ZERO_RUN - 1, ZERO_RUN, 2 * ZERO_RUN, 3 * ZERO_RUN + 5, 9000):
        for data in (rng.randbytes(n), bytes(n), rng.randbytes(13) + bytes(n) + b"x"):
            assert crc32c_python(data) == bitwise(data), (n, BACKEND)
            cut = len(data) // 3
            assert crc32c_python(data[cut:], crc32c_python(data[:cut])) == bitwise(data)
            assert crc32c(data) == bitwise(data)


def test_checksum_field_is_read_as_zero() -> None:
    data = bytearray(random.Random(1).randbytes(4096))
    expected = bitwise(bytes(data[:4]) + bytes(4) + bytes(data[8:]))
    assert checksum_with_field_zeroed(data, 4) == expected
