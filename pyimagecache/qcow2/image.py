"""The qcow2 image object: open and validate, map guest ranges to runs, random-access reads.

The image, its backing file and its external data file are read through
:class:`~pyimagecache.sourcefile.SourceFile` positional reads only, so one :class:`Image` may
be read from several threads at once (the converter does), and from a download still arriving.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

from .._codecs import DecompressError, inflate_raw, zstd_decompress
from .._sparse import thread_buffer
from ..diskimage import COMPRESSED, DATA, UNALLOCATED, DiskImage, Extent
from ..errors import Qcow2CorruptError, Qcow2UnsupportedError
from ..sourcefile import SourceFile, as_source
from .describe import describe
from .header import (
    COMPAT_LAZY_REFCOUNTS,
    INCOMPAT_CORRUPT,
    INCOMPAT_DIRTY,
    MAGIC,
    MAX_CLUSTER_BITS,
    MIN_CLUSTER_BITS,
    parse_header,
)
from .tables import L1_OFFSET_MASK, L2Decoder, Run, l1_entry_offset

PathLike = Union[str, "os.PathLike[str]"]

#: Longest chain of backing files followed (a loop of backing files ends here too).
MAX_BACKING_DEPTH = 16
_L2_CACHE_BYTES = 4 << 20  # per image, for random reads; the converter reads each table once
_ZERO_L1_CHUNK = bytes(4096)
#: Compressed clusters of one read are fetched with one pread while their host span stays
#: this small.
MAX_BATCH_SPAN = 4 << 20

__all__ = ["MAX_BACKING_DEPTH", "Extent", "Image", "RawFile", "open_image"]


class RawFile:
    """A raw backing file or external data file; reads past its end give zeros."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = SourceFile.open(path)
        self.virtual_size = self.file.size

    def read(self, offset: int, length: int) -> bytes:
        return self.file.pread_padded(length, offset)

    def close(self) -> None:
        self.file.close()


def open_backing(path: Path, fmt: Optional[str], depth: int) -> Source:
    """Open a backing file as qcow2 or raw: by its declared format, else by its magic bytes."""
    if fmt not in (None, "qcow2", "raw"):
        raise Qcow2UnsupportedError(f"backing file {path} has format {fmt!r}: only qcow2 and raw")
    if fmt is None:
        from .. import formats

        fmt = formats.detect_file(path)
        if fmt not in ("qcow2", "raw"):
            raise Qcow2UnsupportedError(
                f"backing file {path} is a {fmt} image: only qcow2 and raw are followed"
            )
    if fmt == "qcow2":
        return Image(path, _depth=depth)
    return RawFile(path)


class Image(DiskImage):
    """An open qcow2 image. Use :func:`pyimagecache.qcow2.open`."""

    format = "qcow2"

    def __init__(
        self,
        path: Union[PathLike, SourceFile],
        *,
        backing: bool = True,
        self_contained: bool = False,
        _depth: int = 0,
    ) -> None:
        self._self_contained = self_contained
        self.file = as_source(path)
        self.path = self.file.path
        self.backing: Optional[Source] = None
        self._data: Optional[RawFile] = None
        try:
            self.file_size = self.file.size
            self.header = parse_header(self._read_cluster0(), self.file_size)
            self._open_data_file()
            if backing:
                self._open_backing(_depth)
            elif self_contained and self.header.backing_file is not None:
                self._resolve(self.header.backing_file, "backing file")  # refuses it
            hdr = self.header
            self._span = hdr.l2_entries * hdr.cluster_size
            self._l1_count = -(-hdr.virtual_size // self._span)
            self._l1 = self.file.pread(self._l1_count * 8, hdr.l1_table_offset)
            if len(self._l1) < self._l1_count * 8:  # the header check makes this a race only
                raise Qcow2CorruptError("L1 table: truncated (file shrank while reading)")
            self._check_l1_aliases()
            data_size = self._data.virtual_size if self._data else self.file_size
            self._decoder = L2Decoder(hdr, self.file_size, data_size)
            self._data_file = self._data.file if self._data is not None else self.file
            self.virtual_size = hdr.virtual_size
            self.granularity = hdr.cluster_size
            self.has_backing = self.backing is not None
        except OSError as exc:
            self.close()
            if exc.filename is None:  # a pread on our fd (a directory, an I/O error)
                exc.filename = str(self.path)
            raise
        except BaseException:
            self.close()
            raise
        self._lock = threading.Lock()
        self._l2_cache: OrderedDict[int, bytes] = OrderedDict()

    # -- attributes -------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.header.version

    @property
    def cluster_bits(self) -> int:
        return self.header.cluster_bits

    @property
    def cluster_size(self) -> int:
        return self.header.cluster_size

    @property
    def compression_type(self) -> str:
        return self.header.compression_type

    @property
    def incompatible_features(self) -> int:
        return self.header.incompatible_features

    @property
    def compatible_features(self) -> int:
        return self.header.compatible_features

    @property
    def autoclear_features(self) -> int:
        return self.header.autoclear_features

    @property
    def extended_l2(self) -> bool:
        return self.header.extended_l2

    @property
    def refcount_bits(self) -> int:
        return 1 << self.header.refcount_order

    @property
    def snapshots_count(self) -> int:
        return self.header.nb_snapshots

    @property
    def dirty(self) -> bool:
        return bool(self.header.incompatible_features & INCOMPAT_DIRTY)

    @property
    def corrupt(self) -> bool:
        return bool(self.header.incompatible_features & INCOMPAT_CORRUPT)

    @property
    def lazy_refcounts(self) -> bool:
        return bool(self.header.compatible_features & COMPAT_LAZY_REFCOUNTS)

    @property
    def backing_file(self) -> Optional[str]:
        return self.header.backing_file

    @property
    def backing_format(self) -> Optional[str]:
        return self.header.backing_format

    @property
    def data_file(self) -> Optional[str]:
        return self.header.data_file

    @property
    def l1_size(self) -> int:
        return self.header.l1_size

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the image and its backing and data files (idempotent)."""
        for other in (self.backing, self._data):
            if other is not None:
                other.close()
        self.file.close()

    def __enter__(self) -> Image:
        return self

    def __repr__(self) -> str:
        return (
            f"<qcow2.Image {str(self.path)!r} v{self.version} {self.virtual_size} bytes, "
            f"{self.cluster_size}-byte clusters, {self.compression_type}>"
        )

    # -- opening ----------------------------------------------------------------------------
    def _read_cluster0(self) -> bytes:
        head = self.file.pread(4096, 0)
        if len(head) >= 24 and head[:4] == MAGIC:
            bits = struct.unpack_from(">I", head, 20)[0]
            if MIN_CLUSTER_BITS <= bits <= MAX_CLUSTER_BITS and (1 << bits) > len(head):
                head = self.file.pread(1 << bits, 0)
        return head

    def _resolve(self, name: str, what: str) -> Path:
        from ..errors import Qcow2ExternalReferenceError
        from ..formats import protocol_of

        source = str(self.path)
        protocol = protocol_of(name)
        if protocol is not None:
            raise Qcow2ExternalReferenceError(
                f"{source}: its {what} {name!r} is a {protocol}: specification, not a file "
                "name; pyimagecache never opens those (they can name the network, a device or "
                "any local file)",
                reference=name,
                source=source,
            )
        if self._self_contained:
            raise Qcow2ExternalReferenceError(
                f"{source}: names a {what} {name!r}: a downloaded image must be "
                "self-contained, since the name would resolve to a file on this machine",
                reference=name,
                source=source,
            )
        # qemu resolves relative names against the directory of the image that names them.
        return self.path.parent / name

    def _open_data_file(self) -> None:
        name = self.header.data_file
        if name is None:
            return
        path = self._resolve(name, "external data file")
        try:
            self._data = RawFile(path)
        except OSError as exc:
            raise Qcow2UnsupportedError(
                f"{self.path}: external data file {name!r} cannot be opened ({path}: "
                f"{exc.strerror})"
            ) from None

    def _open_backing(self, depth: int) -> None:
        name = self.header.backing_file
        if name is None:
            return
        if depth >= MAX_BACKING_DEPTH:
            raise Qcow2UnsupportedError(
                f"{self.path}: backing chain deeper than {MAX_BACKING_DEPTH} images (a loop?)"
            )
        path = self._resolve(name, "backing file")
        try:
            self.backing = open_backing(path, self.header.backing_format, depth + 1)
        except OSError as exc:
            raise Qcow2UnsupportedError(
                f"{self.path}: backing file {name!r} cannot be opened ({path}: {exc.strerror})"
            ) from None

    # -- mapping ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.file.fd < 0:
            raise ValueError("I/O operation on a closed qcow2 image")

    def _check_l1_aliases(self) -> None:
        """Two L1 entries sharing one L2 table is corruption (qemu-img check flags it); refusing
        it also bounds the work of a walk by the size of the file, not by a hostile L1."""
        seen: dict[int, int] = {}
        for index in self._nonzero_l1(0, self._l1_count):
            offset = self._l1_entry(index) & L1_OFFSET_MASK
            if not offset:
                continue
            first = seen.setdefault(offset, index)
            if first != index:
                raise Qcow2CorruptError(
                    f"L1 entries {first} and {index} both point to the L2 table at {offset:#x}"
                )

    def _l1_entry(self, index: int) -> int:
        entry: int = struct.unpack_from(">Q", self._l1, 8 * index)[0]
        return entry

    def _l2_table(self, index: int, offset: int, cache: bool) -> bytes:
        if cache:
            with self._lock:
                table = self._l2_cache.get(index)
                if table is not None:
                    self._l2_cache.move_to_end(index)
                    return table
        table = self.file.pread(self.cluster_size, offset)
        if len(table) < self.cluster_size:
            raise Qcow2CorruptError(f"L1 entry {index}: L2 table at {offset:#x} is truncated")
        if cache:
            with self._lock:
                self._l2_cache[index] = table
                while len(self._l2_cache) > max(1, _L2_CACHE_BYTES // self.cluster_size):
                    self._l2_cache.popitem(last=False)
        return table

    def _nonzero_l1(self, start: int, stop: int) -> Iterator[int]:
        """Indices of non-zero L1 entries in [start, stop), skipping zero stretches at memcmp
        speed so that an empty multi-terabyte image costs nothing."""
        l1 = self._l1
        step = len(_ZERO_L1_CHUNK) // 8
        index = start
        while index < stop:
            chunk_end = min(stop, (index // step + 1) * step)
            lo, hi = index * 8, chunk_end * 8
            if not l1.startswith(_ZERO_L1_CHUNK[: hi - lo], lo, hi):
                for i in range(index, chunk_end):
                    if self._l1_entry(i):
                        yield i
            index = chunk_end

    def runs(
        self, start: int = 0, stop: Optional[int] = None, *, cache: bool = True
    ) -> Iterator[Run]:
        """Runs covering guest bytes [start, stop), in order, from the L1/L2 tables alone.

        Runs are clipped to the virtual size but not to ``start``/``stop``: a run may begin
        before ``start`` or end after ``stop``.
        """
        self._check_open()
        size = self.virtual_size
        stop = size if stop is None else min(stop, size)
        if start >= stop:
            return
        span, cs, hdr = self._span, self.cluster_size, self.header
        first_l1, last_l1 = start // span, (stop - 1) // span
        pos = first_l1 * span  # guest offset covered so far
        for index in self._nonzero_l1(first_l1, last_l1 + 1):
            base = index * span
            if base > pos:
                yield Run(pos, base - pos, UNALLOCATED)
            l2_offset = l1_entry_offset(hdr, index, self._l1_entry(index), self.file_size)
            first = (start - base) // cs if index == first_l1 else 0
            last = (stop - 1 - base) // cs + 1 if index == last_l1 else hdr.l2_entries
            if not l2_offset:
                pos = min(size, base + last * cs)
                yield Run(base + first * cs, pos - base - first * cs, UNALLOCATED)
                continue
            table = self._l2_table(index, l2_offset, cache)
            yield from self._decoder.runs(table, l2_offset, index, first, last)
            pos = min(size, base + last * cs)
        end = min(size, -(-stop // cs) * cs)
        if pos < end:
            yield Run(pos, end - pos, UNALLOCATED)

    def extents(self) -> Iterator[Extent]:
        """Merged (offset, length, kind) runs covering the whole virtual disk.

        >>> with qcow2.open("disk.qcow2") as img:  # doctest: +SKIP
        ...     sum(e.length for e in img.extents() if e.kind == qcow2.DATA)
        """
        current: Optional[Extent] = None
        for run in self.runs():
            if current is not None and current.kind == run.kind:
                current = Extent(current.offset, current.length + run.length, run.kind)
                continue
            if current is not None:
                yield current
            current = Extent(run.guest, run.length, run.kind)
        if current is not None:
            yield current

    # -- reading ----------------------------------------------------------------------------
    def decompress(self, run: Run, stream: Union[bytes, memoryview]) -> bytes:
        """The cluster of the compressed ``run`` from its ``stream`` bytes, exactly one cluster."""
        try:
            if self.compression_type == "zstd":
                return zstd_decompress(stream, self.cluster_size)
            return inflate_raw(stream, self.cluster_size)
        except DecompressError as exc:
            raise Qcow2CorruptError(
                f"compressed cluster {run.guest // self.cluster_size} (guest offset "
                f"{run.guest:#x}, {run.csize} bytes at host offset {run.host:#x}) does not "
                f"decompress to {self.cluster_size} bytes: {exc}"
            ) from None

    def read_backing(self, offset: int, length: int) -> bytes:
        """Guest bytes from the backing file; zeros past its end or without one."""
        backing = self.backing
        if backing is None:
            return bytes(length)
        avail = max(0, min(length, backing.virtual_size - offset))
        if avail == length:
            return backing.read(offset, length)
        return (backing.read(offset, avail) if avail else b"") + bytes(length - avail)

    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        """Fill ``buf[:length]`` with the guest bytes at ``offset``: the one way runs become
        bytes, for :meth:`read` and the converter's tasks alike."""
        self._check_open()
        end = offset + length
        view = memoryview(buf)
        batch: List[Run] = []
        for run in self.runs(offset, end):
            if run.kind == COMPRESSED:
                if batch and (
                    run.host + run.csize - batch[0].host > MAX_BATCH_SPAN
                    or run.host < batch[0].host
                ):
                    self._inflate(batch, offset, end, view)
                    batch = []
                batch.append(run)
                continue
            if batch:
                self._inflate(batch, offset, end, view)
                batch = []
            lo, hi = max(run.guest, offset), min(run.guest + run.length, end)
            if lo >= hi:
                continue
            out = view[lo - offset : hi - offset]
            if run.kind == DATA:
                host = run.host + lo - run.guest
                got = self._data_file.pread_into(out, hi - lo, host)  # type: ignore[arg-type]
                if got < hi - lo:  # a host cluster running past the end of the file: zeros
                    out[got:] = bytes(hi - lo - got)
            elif run.kind == UNALLOCATED and self.backing is not None:
                out[:] = self.read_backing(lo, hi - lo)
            else:
                out[:] = bytes(hi - lo)
        if batch:
            self._inflate(batch, offset, end, view)

    def _inflate(self, batch: Sequence[Run], offset: int, end: int, view: memoryview) -> None:
        """Decompress host-ordered compressed ``batch`` read with one pread (short only at the
        end of the file, which qemu pads) into its place in ``view``."""
        lo = batch[0].host
        hi = max(r.host + r.csize for r in batch)
        inbuf = thread_buffer("compressed", hi - lo)
        got = self.file.pread_into(inbuf, hi - lo, lo)
        stream = memoryview(inbuf)
        for run in batch:
            begin = run.host - lo
            cluster = self.decompress(run, stream[begin : min(got, begin + run.csize)])
            g_lo, g_hi = max(run.guest, offset), min(run.guest + run.length, end)
            view[g_lo - offset : g_hi - offset] = memoryview(cluster)[
                g_lo - run.guest : g_hi - run.guest
            ]

    def describe(self) -> dict:  # type: ignore[type-arg]
        """``qemu-img info --output=json``'s fields for this image."""
        return describe(self)


#: A backing file: another qcow2 image or a raw file.
Source = Union["Image", RawFile]


def open_image(
    path: Union[PathLike, SourceFile], *, backing: bool = True, self_contained: bool = False
) -> Image:
    """Open and validate a qcow2 image. With ``backing=False`` its backing file is not opened
    (unallocated ranges then read as zeros), which is enough for metadata such as ``info``.
    With ``self_contained=True`` (a download) any backing or external data file is an
    :class:`~pyimagecache.errors.ExternalReferenceError`; ``json:`` and protocol names
    (``nbd:``, ``http:``...) always are.

    >>> with open_image("disk.qcow2") as img:  # doctest: +SKIP
    ...     print(img.virtual_size, img.compression_type)
    """
    return Image(path, backing=backing, self_contained=self_contained)
