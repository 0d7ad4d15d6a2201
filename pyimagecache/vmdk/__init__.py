"""A pure-Python VMDK reader: hosted sparse extents (monolithicSparse, streamOptimized) and
descriptors of sparse, flat and zero extents (monolithicFlat, twoGbMaxExtentSparse,
twoGbMaxExtentFlat, vmfs); conversion to raw goes through the package's converter.

>>> from pyimagecache.sourcefile import SourceFile
>>> from pyimagecache import vmdk
>>> with vmdk.open_image(SourceFile.open("disk.vmdk")) as img:  # doctest: +SKIP
...     img.create_type, img.virtual_size
('streamOptimized', 10737418240)

Refused with :class:`~pyimagecache.VmdkUnsupportedError`: seSparse and vmfsSparse (COWD)
extents, delta links (a parent named by ``parentFileNameHint``), extents outside the
descriptor's directory, missing extent files.

Modules: ``header`` (the sparse extent header and footer), ``grains`` (grain directory and
tables to runs, compressed grains), ``descriptor`` (the text descriptor, extent paths),
``flat`` (flat and zero extents), ``image`` (the :class:`VmdkImage`) and ``describe``.
"""

from __future__ import annotations

from .image import VmdkImage, open_image

__all__ = ["VmdkImage", "open_image"]
