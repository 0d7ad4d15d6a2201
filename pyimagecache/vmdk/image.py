"""The VMDK image: a standalone sparse extent, or a descriptor whose extents (sparse, flat,
zero) are concatenated in order; extents, thread-safe reads, ``describe``.

Every file is read through :class:`~pyimagecache.sourcefile.SourceFile` positional reads, so
one image may be read from several threads at once (the converter does), and the image file
itself may be a download still arriving. A stream-optimized extent whose grain directory is at
its end (gdOffset GD_AT_END) is read from its footer: on a growing file that waits for the end
of the download, which is the format's nature.
"""

from __future__ import annotations

import os
import stat
from bisect import bisect_right
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from ..diskimage import DiskImage, Extent
from ..errors import VmdkCorruptError, VmdkUnsupportedError
from ..sourcefile import SourceFile
from .describe import describe
from .descriptor import (
    NO_PARENT,
    Descriptor,
    check_create_type,
    parse_descriptor,
    resolve_extent,
)
from .flat import FlatExtent, ZeroExtent
from .grains import SparseExtent
from .header import (
    COWD_MAGIC,
    FOOTER_BYTES,
    MAGIC,
    MAX_CAPACITY_SECTORS,
    MAX_DESCRIPTOR_BYTES,
    SECTOR,
    SESPARSE_MAGIC,
    parse_footer,
    parse_header,
)

Part = Union[SparseExtent, FlatExtent, ZeroExtent]

__all__ = ["VmdkImage", "open_image"]


def _refuse_other_magic(head: bytes, what: str) -> None:
    if head.startswith(COWD_MAGIC):
        raise VmdkUnsupportedError(f"{what} is an ESX vmfsSparse (COWD) extent: not supported")
    if head.startswith(SESPARSE_MAGIC):
        raise VmdkUnsupportedError(f"{what} is an ESXi seSparse extent: not supported")


def open_sparse(file: SourceFile, name: str) -> SparseExtent:
    """Validate the sparse extent in ``file`` (its footer too when gdOffset is GD_AT_END);
    ``name`` is how a descriptor names it ("" for the image file itself)."""
    try:
        header = parse_header(file.pread(SECTOR, 0), file.size)
        if header.gd_at_end:
            # qemu reads the footer 1536 bytes before the end of the file rounded up to a sector.
            at = -(-file.size // SECTOR) * SECTOR - FOOTER_BYTES
            tail = file.pread_padded(FOOTER_BYTES, at) if at >= 0 else b""
            header = parse_footer(tail, at, file.size)
    except (VmdkCorruptError, VmdkUnsupportedError) as exc:
        if not name:
            raise
        raise type(exc)(f"extent {name!r}: {exc}") from None
    return SparseExtent(file, header, name)


class VmdkImage(DiskImage):
    """An open VMDK. Use :func:`pyimagecache.vmdk.open_image`.

    >>> with open_image(SourceFile.open("disk.vmdk")) as img:  # doctest: +SKIP
    ...     img.create_type, img.virtual_size
    ('streamOptimized', 10737418240)
    """

    format = "vmdk"

    def __init__(self, source: SourceFile, *, self_contained: bool = False) -> None:
        self._self_contained = self_contained
        self.file = source
        self.path = source.path
        self.parts: List[Part] = []
        self.bases: List[int] = []
        self.cid = 0
        self.parent_cid = NO_PARENT
        self.create_type = ""
        self._files: Dict[Path, SourceFile] = {}
        self.open_or_close(self._open)
        compressed = [p.grain for p in self.parts if isinstance(p, SparseExtent) and p.compressed]
        self.granularity = max(compressed, default=4096)
        self.has_backing = False

    # -- opening ----------------------------------------------------------------------------
    def _open(self) -> None:
        head = self.file.pread(SECTOR, 0)
        _refuse_other_magic(head, str(self.path))
        if head.startswith(MAGIC):
            part = open_sparse(self.file, "")
            self.create_type = "streamOptimized" if part.compressed else "monolithicSparse"
            hdr = part.header
            if hdr.desc_offset and hdr.desc_size:
                raw = self.file.pread(hdr.desc_size * SECTOR, hdr.desc_offset * SECTOR)
                desc = parse_descriptor(
                    raw, f"{self.path}: embedded descriptor", with_extents=False
                )
                check_create_type(desc._replace(create_type=self.create_type), str(self.path))
                self._ids(desc)
            self._add(part)
            return
        if self.file.size > MAX_DESCRIPTOR_BYTES:
            raise VmdkCorruptError(
                f"{self.path}: neither a sparse extent (magic {head[:4]!r}) nor a descriptor "
                f"of at most {MAX_DESCRIPTOR_BYTES} bytes ({self.file.size} bytes)"
            )
        where = f"{self.path}: descriptor"
        if self._self_contained:
            from ..errors import VmdkExternalReferenceError

            raise VmdkExternalReferenceError(
                f"{where}: a VMDK descriptor names its extents in other files, which for a "
                "download would resolve to whatever lies beside it; only self-contained images "
                "(monolithicSparse, streamOptimized) are converted",
                reference="its extent files",
                source=str(self.path),
            )
        desc = parse_descriptor(self.file.pread(self.file.size, 0), where)
        self.create_type = check_create_type(desc, where)
        self._ids(desc)
        if not desc.extents:
            raise VmdkCorruptError(f"{where}: no extent lines")
        for line in desc.extents:
            self._add(self._open_extent(line.type, line.name, line.sectors, line.offset,
                                        f"{where} line {line.line}"))  # fmt: skip

    def _ids(self, desc: Descriptor) -> None:
        if desc.cid is not None:
            self.cid = desc.cid
        if desc.parent_cid is not None:
            self.parent_cid = desc.parent_cid

    def _add(self, part: Part) -> None:
        base = self.bases[-1] + self.parts[-1].size if self.parts else 0
        if (base + part.size) // SECTOR > MAX_CAPACITY_SECTORS:
            raise VmdkCorruptError(f"{self.path}: the extents add up to more than 2^63 bytes")
        self.bases.append(base)
        self.parts.append(part)
        self.virtual_size = base + part.size

    def _open_extent(
        self, kind: str, name: Optional[str], sectors: int, offset: int, what: str
    ) -> Part:
        if kind == "ZERO" or name is None:
            return ZeroExtent(sectors)
        file = self._extent_file(name, what)
        if kind != "SPARSE":
            return FlatExtent(file, offset, sectors, kind, name)
        head = file.pread(SECTOR, 0)
        _refuse_other_magic(head, f"{what}: extent {name!r}")
        if not head.startswith(MAGIC):
            raise VmdkCorruptError(
                f"{what}: SPARSE extent {name!r} has magic {head[:4]!r}, expected {MAGIC!r}"
            )
        return open_sparse(file, name)

    def _extent_file(self, name: str, what: str) -> SourceFile:
        path = resolve_extent(self.path.parent, name, what)
        if path in self._files:
            return self._files[path]
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise VmdkUnsupportedError(f"{what}: extent {name!r} is not a regular file")
            file = SourceFile.open(path)
        except FileNotFoundError:
            raise VmdkUnsupportedError(
                f"{what}: extent file {name!r} is missing ({path})"
            ) from None
        except OSError as exc:  # a name too long, a permission, too many open files
            raise VmdkUnsupportedError(
                f"{what}: extent file {name!r} cannot be opened ({path}: {exc.strerror})"
            ) from None
        self._files[path] = file
        return file

    # -- the protocol -----------------------------------------------------------------------
    def extents(self) -> Iterator[Extent]:
        """Merged runs covering the whole virtual disk, extent after extent."""
        current: Optional[Extent] = None
        for base, part in zip(self.bases, self.parts):
            for run in part.runs(0, part.size):
                if current is not None and current.kind == run.kind:
                    current = Extent(current.offset, current.length + run.length, run.kind)
                    continue
                if current is not None:
                    yield current
                current = Extent(base + run.guest, run.length, run.kind)
        if current is not None:
            yield current

    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        if self.file.fd < 0:
            raise ValueError("I/O operation on a closed VMDK image")
        view = memoryview(buf)
        index = bisect_right(self.bases, offset) - 1
        pos, end = offset, offset + length
        while pos < end and index < len(self.parts):
            base, part = self.bases[index], self.parts[index]
            n = min(end, base + part.size) - pos
            if n > 0:
                part.read_into(pos - base, n, view[pos - offset : pos - offset + n])
                pos += n
            index += 1

    def describe(self) -> Dict[str, Any]:
        """``qemu-img info --output=json``'s fields for this image."""
        return describe(self)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"<vmdk.VmdkImage {str(self.path)!r} {self.create_type} {self.virtual_size} bytes, "
            f"{len(self.parts)} extent(s)>"
        )

    def extent_path(self, part: Part) -> str:
        """The extent's file name as qemu-img prints it: the descriptor's directory joined
        with the name from the extent line."""
        if isinstance(part, ZeroExtent):
            return ""  # no file (qemu 7.2 skips ZERO lines altogether)
        if not part.name:
            return str(self.path)
        return os.path.join(os.path.dirname(str(self.path)), part.name)


def open_image(source: SourceFile, *, self_contained: bool = False) -> VmdkImage:
    """Open and validate a VMDK (sparse extent or descriptor) read from ``source``; with
    ``self_contained=True`` (a download) a descriptor, which names other files, is refused."""
    return VmdkImage(source, self_contained=self_contained)
