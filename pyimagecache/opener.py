"""Open any supported disk image by its magic bytes, and describe it as ``qemu-img info`` does.

One table maps each format of :mod:`pyimagecache.formats` to the function that opens it, so a
new reader is one line here; readers are imported only when their format is met.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Dict, Optional, Union

from . import formats
from .diskimage import DiskImage
from .sourcefile import SourceFile, as_source

PathLike = Union[str, "os.PathLike[str]"]

#: format -> "module:function" opening it from a SourceFile.
READERS: Dict[str, str] = {
    formats.RAW: "pyimagecache.rawimage:open_image",
    formats.QCOW2: "pyimagecache.qcow2.image:open_image",
    formats.VMDK: "pyimagecache.vmdk.image:open_image",
    formats.VHD: "pyimagecache.vhd.image:open_image",
    formats.VHDX: "pyimagecache.vhdx.image:open_image",
    formats.VDI: "pyimagecache.vdi:open_image",
}


#: Formats whose images can name other files (qcow2 backing and data files, VMDK extents).
_REFERENCING = (formats.QCOW2, formats.VMDK)


def open_image(
    src: Union[PathLike, SourceFile],
    fmt: Optional[str] = None,
    *,
    self_contained: bool = False,
    metadata_only: bool = False,
) -> DiskImage:
    """Open the disk image at ``src`` in whatever supported format its magic bytes say (or
    as ``fmt``, when the caller already knows: a growing download is not read to its end just
    to look at its trailer).

    A local image may name other local files (a qcow2 backing chain, a VMDK descriptor's
    extents), never a ``json:`` or protocol name; with ``self_contained=True`` (what the cache
    uses for downloads) naming any other file is an
    :class:`~pyimagecache.errors.ExternalReferenceError`. ``metadata_only=True`` (what
    :func:`info` uses) does not open a qcow2 backing chain, only names it, as qemu-img info.

    A recognised format without a reader raises :class:`UnsupportedFormatError`; containers
    (xz, tar, ...) are not disk images: :func:`pyimagecache.ensure` unpacks those.

    >>> with open_image("disk.vhdx") as img:  # doctest: +SKIP
    ...     img.format, img.virtual_size
    ('vhdx', 10737418240)
    """
    source = as_source(src)
    try:
        if fmt is None:
            head = source.pread(formats.SNIFF_SIZE, 0)
            tail = b""
            if source.size >= formats.TAIL_SIZE:
                tail = source.pread(formats.TAIL_SIZE, source.size - formats.TAIL_SIZE)
            fmt = formats.detect(head, tail)
        target = READERS.get(fmt)
        if target is None:
            from .errors import UnsupportedFormatError

            raise UnsupportedFormatError(str(source.path), fmt, tuple(READERS))
        module, _, function = target.partition(":")
        opener = getattr(importlib.import_module(module), function)
        options = {"self_contained": True} if self_contained and fmt in _REFERENCING else {}
        if metadata_only and fmt == formats.QCOW2:
            options["backing"] = False  # as qemu-img info: the chain is named, not opened
        opened: DiskImage = opener(source, **options)
        return opened
    except BaseException:
        if source is not src:
            source.close()
        raise


def image_info(img: DiskImage) -> Dict[str, Any]:
    """:func:`info` for an image that is already open."""
    facts = img.describe()
    facts["allocation"] = img.allocation()
    return facts


def info(path: PathLike) -> Dict[str, Any]:
    """The fields of ``qemu-img info --output=json`` for the image at ``path`` (any supported
    format), with the same names, plus ``allocation``: guest bytes per extent kind.

    >>> info("noble.img")["format"], info("noble.img")["virtual-size"]  # doctest: +SKIP
    ('qcow2', 3758096384)
    """
    with open_image(path, metadata_only=True) as img:
        return image_info(img)
