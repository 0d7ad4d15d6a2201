"""VHD (Virtual PC, Hyper-V's older format, Azure's disk format; qemu calls it ``vpc``).

Fixed and dynamic disks are read; differencing disks are refused with
:class:`~pyimagecache.errors.VhdUnsupportedError` naming their parent.

>>> from pyimagecache.vhd import open_image  # doctest: +SKIP
>>> with open_image(SourceFile.open("disk.vhd")) as img:  # doctest: +SKIP
...     img.virtual_size
"""

from __future__ import annotations

from .image import VhdImage, open_image

__all__ = ["VhdImage", "open_image"]
