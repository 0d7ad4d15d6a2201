"""CRC-32C (Castagnoli: reflected, polynomial 0x82F63B78), as VHDX checksums use it.

The standard library has no CRC-32C, so this module carries a table-driven one (slicing by 8:
eight table lookups per 8-byte word). When an installed package offers a C implementation
(``google-crc32c`` or ``crc32c``), it is used instead; neither is a dependency.

>>> hex(crc32c(b"123456789"))
'0xe3069283'
"""

from __future__ import annotations

import struct
from typing import Callable, List, Tuple, Union

Bytes = Union[bytes, bytearray, memoryview]

POLY = 0x82F63B78


def _tables() -> List[List[int]]:
    first = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        first.append(c)
    tables = [first]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ first[prev[n] & 0xFF] for n in range(256)])
    return tables


_T = _tables()

#: Zero runs are common (a 64 KiB region table holds a few hundred bytes): the CRC register
#: after N zero bytes is a linear function of the register before, so a run of ZERO_RUN zeros
#: costs at most 32 XORs instead of N table steps. The columns come from squaring the one-byte
#: step, as zlib's crc32_combine does.
ZERO_RUN = 512
_ZEROS = bytes(ZERO_RUN)


def _apply(columns: List[int], c: int) -> int:
    out = 0
    i = 0
    while c:
        if c & 1:
            out ^= columns[i]
        c >>= 1
        i += 1
    return out


def _zero_operator(count: int) -> List[int]:
    t0 = _T[0]
    columns = [(1 << i >> 8) ^ t0[(1 << i) & 0xFF] for i in range(32)]  # one zero byte
    n = 1
    while n < count:  # count is a power of two
        columns = [_apply(columns, col) for col in columns]
        n *= 2
    return columns


_ZERO_COLUMNS = _zero_operator(ZERO_RUN)


def crc32c_python(data: Bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` continuing from ``crc`` (the value of the bytes before it)."""
    view = memoryview(data).cast("B")
    c = crc ^ 0xFFFFFFFF
    n = len(view)
    start = 0
    if n >= 2 * ZERO_RUN:
        for pos in range(0, n - n % ZERO_RUN, ZERO_RUN):
            if view[pos : pos + ZERO_RUN] == _ZEROS:
                c = _update(c, view[start:pos])
                c = _apply(_ZERO_COLUMNS, c)
                start = pos + ZERO_RUN
    return _update(c, view[start:]) ^ 0xFFFFFFFF


def _update(c: int, view: memoryview) -> int:
    """The CRC register after the bytes of ``view``, slicing by 8."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    n = len(view)
    whole = n - n % 8
    for lo, hi in struct.iter_unpack("<II", view[:whole]):
        lo ^= c
        c = (
            t7[lo & 0xFF] ^ t6[(lo >> 8) & 0xFF] ^ t5[(lo >> 16) & 0xFF] ^ t4[lo >> 24]
            ^ t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24]
        )  # fmt: skip
    for byte in view[whole:]:
        c = (c >> 8) ^ t0[(c ^ byte) & 0xFF]
    return c


def _pick() -> Tuple[str, Callable[[Bytes, int], int]]:
    try:
        import google_crc32c  # type: ignore[import-not-found,unused-ignore]

        if google_crc32c.implementation == "c":

            def google(data: Bytes, crc: int = 0) -> int:
                return int(google_crc32c.extend(crc, bytes(data)))

            return "google-crc32c", google
    except ImportError:
        pass
    try:
        import crc32c as crc32c_module  # type: ignore[import-not-found,unused-ignore]

        def package(data: Bytes, crc: int = 0) -> int:
            return int(crc32c_module.crc32c(bytes(data), crc))

        return "crc32c", package
    except ImportError:
        pass
    return "python", crc32c_python


#: Which implementation :func:`crc32c` uses: "python" or the package's name.
BACKEND, _impl = _pick()


def crc32c(data: Bytes, crc: int = 0) -> int:
    """CRC-32C of ``data``; pass the CRC of preceding bytes as ``crc`` to continue it."""
    return _impl(data, crc)


def checksum_with_field_zeroed(data: Bytes, field: int) -> int:
    """CRC-32C of ``data`` with the 4-byte checksum field at ``field`` read as zero, as every
    VHDX structure (headers, region table, log entries) computes its own checksum."""
    view = memoryview(data).cast("B")
    crc = crc32c(view[:field])
    crc = crc32c(b"\0\0\0\0", crc)
    return crc32c(view[field + 4 :], crc)


def stored_checksum(data: Bytes, field: int) -> int:
    value: int = struct.unpack_from("<I", data, field)[0]
    return value


__all__ = ["BACKEND", "checksum_with_field_zeroed", "crc32c", "crc32c_python", "stored_checksum"]
