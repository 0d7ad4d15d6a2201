"""A pure-Python qcow2 reader and a parallel, sparse, atomic qcow2 -> raw converter.

>>> from pyimagecache import qcow2
>>> with qcow2.open("noble.img") as img:  # doctest: +SKIP
...     [e for e in img.extents() if e.kind == qcow2.COMPRESSED][:1]
[Extent(offset=0, length=1048576, kind='compressed')]
>>> qcow2.convert("noble.img", "noble.raw")  # doctest: +SKIP
PosixPath('noble.raw')

Modules: ``header`` (parse and validate the header), ``tables`` (L1/L2 entries to runs),
``image`` (the :class:`Image`: extents, reads, backing and data files), ``convert`` and ``info``.
"""

from __future__ import annotations

from .convert import convert, default_workers
from .image import MAX_BACKING_DEPTH, Extent, Image, PathLike
from .image import open_image as open
from .info import info
from .tables import COMPRESSED, DATA, UNALLOCATED, ZERO

__all__ = [
    "COMPRESSED",
    "DATA",
    "MAX_BACKING_DEPTH",
    "UNALLOCATED",
    "ZERO",
    "Extent",
    "Image",
    "PathLike",
    "convert",
    "default_workers",
    "info",
    "open",
]
