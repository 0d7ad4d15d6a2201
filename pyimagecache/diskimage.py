"""The image protocol every disk format reader implements, and what the converter relies on.

A reader maps the guest (virtual) disk onto its file from metadata alone: :meth:`extents`
lists every byte of the virtual disk exactly once, in order, as one of four kinds, without
reading any data. :meth:`read_into` fills a buffer with guest bytes; it is thread-safe (readers
use positional reads only), so the converter calls it from several worker threads at once.

Modelled on go-qcow2reader's ``image.Image``: formats differ in how they map and decode; the
parallel, sparse, atomic conversion is written once, in :mod:`pyimagecache.converter`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, NamedTuple

#: Guest bytes stored as is in the file.
DATA = "data"
#: Guest bytes stored compressed (a qcow2 cluster, a streamOptimized grain).
COMPRESSED = "compressed"
#: Guest bytes the metadata says read as zeros.
ZERO = "zero"
#: Guest bytes the file holds nothing for: zeros, or the backing file's bytes when there is one.
UNALLOCATED = "unallocated"
KINDS = (DATA, COMPRESSED, ZERO, UNALLOCATED)


class Extent(NamedTuple):
    """``length`` guest bytes from ``offset``, all of one ``kind``: one of ``DATA``,
    ``COMPRESSED``, ``ZERO`` or ``UNALLOCATED`` (read from the backing file, or zeros)."""

    offset: int
    length: int
    kind: str


class DiskImage:
    """Base class of every reader. Subclasses set :attr:`format`, :attr:`virtual_size` and
    :attr:`granularity` and implement :meth:`extents`, :meth:`read_into` and :meth:`close`;
    :meth:`describe` adds what ``qemu-img info`` reports for the format.

    >>> with pyimagecache.open_image("disk.vmdk") as img:  # doctest: +SKIP
    ...     mbr = img.read(0, 512)
    """

    #: The format's name, as :mod:`pyimagecache.formats` spells it.
    format: str = ""
    #: Size of the virtual disk in bytes.
    virtual_size: int = 0
    #: Reads aligned to a multiple of this never split a unit the format decodes whole (a
    #: compressed cluster or grain), so the converter cuts its tasks at such boundaries where
    #: the image holds compressed extents. It is not the allocation unit: a VHDX payload block
    #: or a qcow2 cluster of plain data is read in parts as well as whole.
    granularity: int = 512
    #: True when UNALLOCATED ranges read from a backing file rather than as zeros.
    has_backing: bool = False

    def extents(self) -> Iterator[Extent]:
        """Merged (offset, length, kind) runs covering the whole virtual disk, in order, from
        the metadata alone."""
        raise NotImplementedError

    def read_into(self, offset: int, length: int, buf: bytearray) -> None:
        """Fill ``buf[:length]`` with the guest bytes at ``offset`` (inside the virtual disk,
        checked by the caller). Called from several threads at once."""
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the virtual disk from ``offset``.

        >>> img.read(0, 512)[510:]  # doctest: +SKIP
        b'U\\xaa'
        """
        if offset < 0 or length < 0 or offset + length > self.virtual_size:
            raise ValueError(
                f"read of {length} bytes at {offset} is outside the virtual disk "
                f"({self.virtual_size} bytes)"
            )
        buf = bytearray(length)
        if length:
            self.read_into(offset, length, buf)
        return bytes(buf)

    def allocation(self) -> Dict[str, int]:
        """Guest bytes per extent kind (``data``, ``compressed``, ``zero``, ``unallocated``)."""
        totals = dict.fromkeys(KINDS, 0)
        for extent in self.extents():
            totals[extent.kind] += extent.length
        return totals

    def describe(self) -> Dict[str, Any]:
        """The fields of ``qemu-img info --output=json`` for this image (without the
        package-wide ``allocation`` summary, which :func:`pyimagecache.info` adds)."""
        return {"format": self.format, "virtual-size": self.virtual_size}

    def close(self) -> None:
        """Close every file the image opened (idempotent)."""

    def open_or_close(self, opening: Callable[[], None]) -> None:
        """Run ``opening`` (a reader's validation of its metadata); on any error close what it
        opened before re-raising, and let an OSError name the image's file."""
        try:
            opening()
        except OSError as exc:
            self.close()
            if exc.filename is None:
                exc.filename = str(getattr(self, "path", "") or "") or None
            raise
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DiskImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
