"""A pure-Python qcow2 reader; conversion to sparse raw goes through the package's converter.

>>> from pyimagecache import qcow2
>>> with qcow2.open("noble.img") as img:  # doctest: +SKIP
...     [e for e in img.extents() if e.kind == qcow2.COMPRESSED][:1]
[Extent(offset=0, length=1048576, kind='compressed')]
>>> qcow2.convert("noble.img", "noble.raw")  # doctest: +SKIP
PosixPath('noble.raw')

Modules: ``header`` (parse and validate the header), ``tables`` (L1/L2 entries to runs),
``image`` (the :class:`Image`: extents, reads, backing and data files) and ``describe``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from .._progress import ProgressCallback
from ..converter import ConvertOptions, convert_opened, default_workers
from ..diskimage import COMPRESSED, DATA, UNALLOCATED, ZERO, Extent
from .image import MAX_BACKING_DEPTH, Image, PathLike
from .image import open_image as open
from .tables import Run

__all__ = [
    "COMPRESSED",
    "DATA",
    "MAX_BACKING_DEPTH",
    "UNALLOCATED",
    "ZERO",
    "Extent",
    "Image",
    "PathLike",
    "Run",
    "convert",
    "default_workers",
    "info",
    "open",
]


def convert(
    src: PathLike,
    dst: PathLike,
    *,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    sync: bool = False,
) -> Path:
    """Convert the qcow2 image ``src`` to a sparse raw disk at ``dst``; return ``dst``.

    :func:`pyimagecache.convert` for an input that must be qcow2 (anything else raises
    :class:`~pyimagecache.Qcow2CorruptError`). Atomic; flushed only with ``sync=True``.

    >>> convert("noble.img", "noble.raw", workers=2)  # doctest: +SKIP
    PosixPath('noble.raw')
    """
    return convert_opened(
        open, src, dst, ConvertOptions(workers=workers, sync=sync, progress=progress)
    )


def info(path: PathLike) -> Dict[str, Any]:
    """The fields of ``qemu-img info --output=json`` that apply to qcow2, with the same names,
    and ``allocation``: guest bytes per extent kind. Like qemu-img info, it reads only the
    image itself, not its backing file.

    >>> info("noble.img")["virtual-size"]  # doctest: +SKIP
    3758096384
    """
    from ..opener import image_info

    with open(path, backing=False) as img:
        return image_info(img)
