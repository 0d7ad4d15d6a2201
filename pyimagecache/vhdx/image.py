"""The VHDX image object: open and validate, map guest ranges to blocks, random-access reads.

Opening follows qemu's vhdx_open: the file type identifier, the current header, the log
(replayed in memory, see :mod:`.log`), the region table, the metadata and the BAT, each
validated before use. Fixed and dynamic disks are both just BAT states; differencing disks
are refused. All I/O goes through :class:`~pyimagecache.sourcefile.SourceFile` positional
reads, so one image serves several threads at once, and a download still arriving.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Union

from ..diskimage import DiskImage, Extent
from ..errors import VhdxUnsupportedError
from ..sourcefile import SourceFile, as_source
from .bat import FULLY_PRESENT, OFFSET_MASK, Bat
from .describe import describe
from .header import (
    Header,
    RegionTable,
    check_file_id,
    check_log_placement,
    parse_headers,
    parse_region_table,
)
from .log import Overlay, OverlayReader, replay
from .metadata import Metadata, parent_path, parse_metadata

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["VhdxImage", "open_image"]


class VhdxImage(DiskImage):
    """An open VHDX image. Use :func:`open_image`."""

    format = "vhdx"
    granularity = 512  # nothing is compressed
    has_backing = False

    def __init__(self, src: Union[PathLike, SourceFile]) -> None:
        self.file = as_source(src)
        self.path = self.file.path
        self.open_or_close(self._open)

    def _open(self) -> None:
        f = self.file
        size = f.size
        check_file_id(f.pread)
        self.header: Header = parse_headers(f.pread, size)
        self.overlay: Overlay = replay(f.pread, self.header, size)
        read = OverlayReader(f.pread, self.overlay).read if self.overlay else f.pread
        self.regions: RegionTable = parse_region_table(read, size)
        check_log_placement(self.header, self.regions)
        self.metadata: Metadata = parse_metadata(read, self.regions.metadata)
        if self.metadata.has_parent:
            parent = parent_path(self.metadata.parent_locator)
            named = f"its parent: {parent!r}" if parent else "its parent locator names no path"
            raise VhdxUnsupportedError(
                f"{self.path} is a differencing VHDX disk ({named}): differencing disks are "
                "not supported; merge it into its parent first"
            )
        self.bat = Bat(read, self.metadata, self.header, self.regions, size)
        self.virtual_size = self.metadata.virtual_size
        self.block_size = self.metadata.block_size

    # -- attributes -------------------------------------------------------------------------
    @property
    def logical_sector_size(self) -> int:
        return self.metadata.logical_sector_size

    @property
    def physical_sector_size(self) -> int:
        return self.metadata.physical_sector_size

    @property
    def fixed(self) -> bool:
        """LeaveBlockAllocated: the disk was created fixed (every block allocated)."""
        return self.metadata.leave_blocks_allocated

    @property
    def log_replayed(self) -> bool:
        """True when the log held entries, replayed in memory for every read."""
        return bool(self.overlay)

    def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"<VhdxImage {str(self.path)!r} {self.virtual_size} bytes, "
            f"{self.block_size}-byte blocks>"
        )

    # -- mapping ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.file.fd < 0:
            raise ValueError("I/O operation on a closed VHDX image")

    def extents(self) -> Iterator[Extent]:
        """Merged (offset, length, kind) runs covering the whole virtual disk."""
        self._check_open()
        bs, size = self.block_size, self.virtual_size
        for run in self.bat.runs():
            start = run.first * bs
            yield Extent(start, min(size, start + run.blocks * bs) - start, run.kind)

    # -- reading ----------------------------------------------------------------------------
    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        """Fill ``buf[:length]`` with the guest bytes at ``offset``."""
        self._check_open()
        view = memoryview(buf)
        bs, bat, overlay = self.block_size, self.bat, self.overlay
        pos, end = offset, offset + length
        while pos < end:
            block, within = divmod(pos, bs)
            n = min(end - pos, bs - within)
            out = view[pos - offset : pos - offset + n]
            entry = bat.entry(block)
            if entry & 7 == FULLY_PRESENT:
                host = (entry & OFFSET_MASK) + within
                got = self.file.pread_into(out, n, host)  # type: ignore[arg-type]
                if got < n:  # a last block partly past the end of the file (qemu allows it)
                    out[got:] = bytes(n - got)
                if overlay and overlay.touches(host, n):
                    overlay.patch(out, host, n)
            else:
                out[:] = bytes(n)
            pos += n

    def describe(self) -> Dict[str, Any]:
        """``qemu-img info --output=json``'s fields for this image."""
        return describe(self)


def open_image(src: Union[PathLike, SourceFile]) -> VhdxImage:
    """Open and validate a VHDX image.

    >>> with open_image("disk.vhdx") as img:  # doctest: +SKIP
    ...     print(img.virtual_size, img.block_size)
    """
    return VhdxImage(src)
