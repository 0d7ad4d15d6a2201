"""A raw disk as an image: every byte is data, except the holes the filesystem reports."""

from __future__ import annotations

from typing import Any, Dict, Iterator

from ._sparse import data_extents
from .diskimage import DATA, UNALLOCATED, DiskImage, Extent
from .sourcefile import GrowingFile, SourceFile


class RawImage(DiskImage):
    """A raw file read as it is; holes (SEEK_HOLE) are UNALLOCATED, which reads as zeros.

    >>> with open_image(SourceFile.open("disk.raw")) as img:  # doctest: +SKIP
    ...     img.format
    'raw'
    """

    format = "raw"

    def __init__(self, source: SourceFile) -> None:
        self.file = source
        self.path = source.path
        # qemu counts a disk in 512-byte sectors: a file of another length reads as rounded up.
        self.virtual_size = -(-source.size // 512) * 512

    def extents(self) -> Iterator[Extent]:
        # A file still being downloaded has no holes to report yet: all of it is data.
        seek = not isinstance(self.file, GrowingFile)
        pos = 0
        length = min(self.file.size, self.virtual_size)
        for start, end in data_extents(self.file.fd, length, seek_data=seek):
            if start > pos:
                yield Extent(pos, start - pos, UNALLOCATED)
            yield Extent(start, end - start, DATA)
            pos = end
        if pos < self.virtual_size:
            yield Extent(pos, self.virtual_size - pos, UNALLOCATED)

    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        got = self.file.pread_into(buf, length, offset)
        if got < length:  # the file shrank under us: what is gone reads as zeros
            buf[got:length] = bytes(length - got)

    def describe(self) -> Dict[str, Any]:
        import os

        return {
            "virtual-size": self.virtual_size,
            "filename": str(self.path),
            "format": "raw",
            "actual-size": os.fstat(self.file.fd).st_blocks * 512,
            "dirty-flag": False,
        }

    def close(self) -> None:
        self.file.close()


def open_image(source: SourceFile) -> RawImage:
    return RawImage(source)
