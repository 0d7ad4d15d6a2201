"""Open any supported disk image by its magic bytes, and describe it as ``qemu-img info`` does.

One table maps each format of :mod:`pyimagecache.formats` to the function that opens it, so a
new reader is one line here; readers are imported only when their format is met.

What ``ensure`` accepts from a file is accepted here too: a disk inside an OVA, a Vagrant box
or an xz/gzip/zstd/bzip2/tar wrapper (recognised by its bytes) is unpacked by
:func:`pyimagecache.unpack.unpack` into a temporary file first. :func:`open_image` puts it in
the temporary directory and removes its name at once, so the disk is gone when the image is
closed (or the process dies); :func:`convert` puts it beside its output (see :func:`unwrapped`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

from . import formats
from ._progress import ProgressCallback
from .diskimage import DiskImage
from .sourcefile import SourceFile, UnpackedSource, as_source

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

    A disk inside an OVA, a Vagrant box or an xz/gzip/zstd/bzip2/tar wrapper is unpacked into
    the temporary directory first (its space is given back when the image is closed). A
    recognised format without a reader raises :class:`UnsupportedFormatError`.

    >>> with open_image("disk.vhdx") as img:  # doctest: +SKIP
    ...     img.format, img.virtual_size
    ('vhdx', 10737418240)
    """
    source = as_source(src)
    try:
        if fmt is None:
            fmt = _detect(source)
        if fmt in formats.CONTAINERS:
            unpacked = _unpack_to_temp(source)
            if source is not src:
                source.close()
            try:
                return open_image(unpacked, _detect(unpacked))  # never a container again
            except BaseException:
                unpacked.close()
                raise
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


def _detect(source: SourceFile) -> str:
    head = source.pread(formats.SNIFF_SIZE, 0)
    tail = b""
    if source.size >= formats.TAIL_SIZE:
        tail = source.pread(formats.TAIL_SIZE, source.size - formats.TAIL_SIZE)
    return formats.detect(head, tail)


def _unpack_to_temp(source: SourceFile) -> UnpackedSource:
    """The disk inside the container ``source``, unpacked into the temporary directory; the
    unpacked file's name is removed at once (its open descriptor keeps it until closed)."""
    import tempfile

    with unwrapped(source, Path(tempfile.gettempdir()) / "pyimagecache.raw") as (inner, _):
        assert inner is not None
        fd = os.open(inner, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    # Named after the container: messages, describe() and relative paths (a qcow2's backing
    # file) speak of the file the caller gave.
    return UnpackedSource(source, fd)


@contextlib.contextmanager
def unwrapped(
    src: Union[PathLike, SourceFile],
    near: PathLike,
    progress: Optional[ProgressCallback] = None,
) -> Iterator[Tuple[Optional[Path], str]]:
    """For a container ``src`` (OVA, Vagrant box, xz, gzip, zstd, bzip2, tar), yield the disk
    inside it unpacked into a hidden temporary sibling of ``near`` (same filesystem: it may
    be renamed onto ``near``) and the disk's format; the temporary is removed on leaving,
    whatever happens. For anything else, yield (None, its format) and touch nothing.

    The free space is checked first against the container's size (the disk takes at least
    that much unless it is mostly zeros, which stay holes); failing to write is an
    :class:`~pyimagecache.errors.OutputError`.

    >>> with unwrapped("appliance.ova", "appliance.raw") as (inner, fmt):  # doctest: +SKIP
    ...     fmt
    'vmdk'
    """
    from ._atomic import temp_sibling
    from ._space import check_free_space

    source = as_source(src)
    try:
        fmt = _detect(source)
        if fmt not in formats.CONTAINERS:
            yield None, fmt
            return
        near = Path(near)
        scratch = temp_sibling(near)
        try:
            check_free_space(scratch, source.size, f"unpacking {source.path.name}")
            payload = _unpack(source, scratch, progress)
            yield scratch, payload
        finally:
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
    finally:
        if source is not src:
            source.close()


def _unpack(source: SourceFile, scratch: Path, progress: Optional[ProgressCallback]) -> str:
    from .errors import ImageCacheError, OutputError
    from .unpack import unpack

    try:
        return unpack(source, scratch, progress=progress)
    except ImageCacheError:
        raise
    except OSError as exc:  # reading the source raises ImageFileError: this is the writing
        raise OutputError(
            f"cannot unpack {source.path.name} into {scratch.parent}: {exc.strerror or exc}"
        ) from exc


def image_info(img: DiskImage) -> Dict[str, Any]:
    """:func:`info` for an image that is already open. For a disk unpacked from a container,
    ``filename`` and ``actual-size`` are the container's, and ``container`` names its
    format (xz, gzip, zstd, bzip2 or tar)."""
    facts = img.describe()
    file = getattr(img, "file", None)
    if isinstance(file, UnpackedSource):
        facts["actual-size"] = file.container_allocated
        facts["container"] = file.container
    facts["allocation"] = img.allocation()
    return facts


def info(path: PathLike) -> Dict[str, Any]:
    """The fields of ``qemu-img info --output=json`` for the image at ``path`` (any supported
    format, also wrapped as :func:`open_image` accepts it), with qemu-img's names and format
    names (``vpc`` for VHD), plus ``allocation``: guest bytes per extent kind.

    >>> info("noble.img")["format"], info("noble.img")["virtual-size"]  # doctest: +SKIP
    ('qcow2', 3758096384)
    """
    with open_image(path, metadata_only=True) as img:
        return image_info(img)
