"""Recognise an image file by its magic bytes, never by its name (Ubuntu's ``.img`` is qcow2)."""

from __future__ import annotations

import os
from typing import Union

QCOW2 = "qcow2"
XZ = "xz"
GZIP = "gzip"
ZSTD = "zstd"
TAR = "tar"
RAW = "raw"

#: Formats that are stream-decompressed (and, for tar, unpacked) into a raw disk.
CONTAINERS = (XZ, GZIP, ZSTD, TAR)

#: Bytes needed to tell every format apart (the tar magic sits at offset 257).
SNIFF_SIZE = 512

_MAGIC = (
    (b"QFI\xfb", QCOW2),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x1f\x8b", GZIP),
    (b"\x28\xb5\x2f\xfd", ZSTD),
)
_TAR_MAGIC_OFFSET = 257


def detect(header: bytes) -> str:
    """The format of data starting with ``header`` (its first :data:`SNIFF_SIZE` bytes).

    >>> detect(b"QFI\\xfb" + bytes(508))
    'qcow2'
    >>> detect(bytes(512))
    'raw'
    """
    for magic, name in _MAGIC:
        if header.startswith(magic):
            return name
    # "ustar\0" (POSIX) or "ustar " (old GNU); a disk's first sector never holds it there.
    if header[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar":
        return TAR
    return RAW


def detect_file(path: Union[str, os.PathLike[str]]) -> str:
    """The format of the file at ``path``."""
    with open(path, "rb") as f:
        return detect(f.read(SNIFF_SIZE))
