"""A pure-Python VHDX (Hyper-V) reader; conversion to raw goes through the package's converter.

>>> from pyimagecache import vhdx
>>> with vhdx.open_image("disk.vhdx") as img:  # doctest: +SKIP
...     img.virtual_size, img.block_size
(10737418240, 33554432)

Modules: ``crc32c`` (the checksum), ``header`` (file identifier, headers, region table),
``log`` (in-memory log replay), ``metadata``, ``bat`` (payload block states), ``image`` (the
:class:`VhdxImage`) and ``describe``.
"""

from __future__ import annotations

from .image import VhdxImage, open_image

__all__ = ["VhdxImage", "open_image"]
