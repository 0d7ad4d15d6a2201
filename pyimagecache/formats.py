"""Recognise an image file by its magic bytes, never by its name (Ubuntu's ``.img`` is qcow2).

This is the package's one table of signatures. Most sit at the start of the file; VDI's at
0x40, tar's at 257, and the VHD footer and DMG trailer in the last 512 bytes. Data that matches
none is raw, as in qemu's probing. A format that is recognised but not converted must never be
passed through as raw: :func:`check_convertible` raises :class:`UnsupportedFormatError` for it.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

RAW = "raw"
QCOW2 = "qcow2"
QCOW = "qcow"
QED = "qed"
VMDK = "vmdk"
VHD = "vhd"
VHDX = "vhdx"
VDI = "vdi"
PARALLELS = "parallels"
BOCHS = "bochs"
CLOOP = "cloop"
DMG = "dmg"
LUKS = "luks"
XZ = "xz"
GZIP = "gzip"
ZSTD = "zstd"
BZIP2 = "bzip2"
TAR = "tar"
ZIP = "zip"

#: Stream-compressed formats: decompressed into a raw disk or another image.
STREAMS = (XZ, GZIP, ZSTD, BZIP2)
#: Formats that are stream-decompressed (and, for tar, unpacked) into a raw disk.
CONTAINERS = (*STREAMS, TAR)
#: Disk formats read by the package's own readers and converted to raw.
DISK_FORMATS: Tuple[str, ...] = (QCOW2, VMDK, VHD, VHDX, VDI)
#: Everything a downloaded source may be for ensure() to turn it into a raw disk.
CONVERTIBLE = (RAW, *DISK_FORMATS, *CONTAINERS)

#: Bytes at the start of a file needed to tell every format apart (tar's magic is at 257).
SNIFF_SIZE = 512
#: Bytes at the end of a file that hold a trailer (VHD footer, DMG koly block).
TAIL_SIZE = 512

# (offset, magic, format), checked in order; the first match wins.
_HEAD_MAGIC: Tuple[Tuple[int, bytes, str], ...] = (
    (0, b"QFI\xfb", QCOW2),  # the version field tells qcow (1) from qcow2 (2, 3): see detect()
    (0, b"QED\x00", QED),
    (0, b"KDMV", VMDK),  # hosted sparse extent (monolithicSparse, streamOptimized)
    (0, b"COWD", VMDK),  # ESX vmfsSparse extent
    (0, b"\xbe\xba\xfe\xca\x00\x00\x00\x00", VMDK),  # seSparse extent
    (0, b"conectix", VHD),  # dynamic and differencing disks copy their footer to offset 0
    (0, b"vhdxfile", VHDX),
    (0x40, b"\x7f\x10\xda\xbe", VDI),
    (0, b"WithoutFreeSpace", PARALLELS),
    (0, b"WithouFreSpacExt", PARALLELS),
    (0, b"Bochs Virtual HD Image", BOCHS),
    (0, b"#!/bin/sh\n#V2.0 Format\n", CLOOP),
    (0, b"LUKS\xba\xbe", LUKS),
    (0, b"\xfd7zXZ\x00", XZ),
    (0, b"\x1f\x8b", GZIP),
    (0, b"\x28\xb5\x2f\xfd", ZSTD),
    (0, b"PK\x03\x04", ZIP),
    (0, b"PK\x05\x06", ZIP),  # an empty archive
    # "ustar\0" (POSIX) or "ustar " (old GNU); a disk's first sector never holds it there.
    (257, b"ustar", TAR),
)
_VMDK_DESCRIPTOR = b"# Disk DescriptorFile"
_BZIP2_BLOCK = (b"1AY&SY", b"\x17rE8P\x90")  # first block, or the end of an empty stream


def detect(header: bytes, tail: bytes = b"") -> str:
    """The format of data starting with ``header`` (its first :data:`SNIFF_SIZE` bytes) and
    ending with ``tail`` (its last :data:`TAIL_SIZE` bytes, when known).

    >>> detect(b"QFI\\xfb\\x00\\x00\\x00\\x03" + bytes(504))
    'qcow2'
    >>> detect(bytes(512), tail=b"conectix" + bytes(504))
    'vhd'
    >>> detect(bytes(512))
    'raw'
    """
    for offset, magic, name in _HEAD_MAGIC:
        if header.startswith(magic, offset):
            if name == QCOW2 and header[4:8] == b"\x00\x00\x00\x01":
                return QCOW
            return name
    if header.startswith(b"BZh") and header[3:4].isdigit() and header[4:10] in _BZIP2_BLOCK:
        return BZIP2
    if header.lstrip(b" \t\r\n").startswith(_VMDK_DESCRIPTOR):
        return VMDK  # a descriptor: see is_descriptor()
    if len(tail) >= TAIL_SIZE:
        trailer = tail[-TAIL_SIZE:]
        if trailer.startswith(b"conectix"):
            return VHD  # a fixed disk: raw data followed by the footer
        if trailer.startswith(b"koly"):
            return DMG
    return RAW


def detect_file(path: Union[str, os.PathLike[str]]) -> str:
    """The format of the file at ``path``.

    >>> detect_file("noble.img")  # doctest: +SKIP
    'qcow2'
    """
    return sniff_file(path)[0]


def sniff_file(path: Union[str, os.PathLike[str]]) -> Tuple[str, bytes]:
    """The format of the file at ``path`` and its first :data:`SNIFF_SIZE` bytes (for the
    checks that look at them again, such as :func:`check_self_contained`)."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_SIZE)
        size = os.fstat(f.fileno()).st_size
        tail = os.pread(f.fileno(), TAIL_SIZE, size - TAIL_SIZE) if size >= TAIL_SIZE else b""
    return detect(head, tail), head


def check_convertible(fmt: str, what: str) -> None:
    """Raise :class:`UnsupportedFormatError` unless ensure() can turn ``fmt`` into a raw disk.

    >>> check_convertible("qed", "disk.img")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pyimagecache.errors.UnsupportedFormatError: disk.img is a qed image, ... (supported: raw, ...)
    """
    if fmt not in CONVERTIBLE:
        from .errors import UnsupportedFormatError

        raise UnsupportedFormatError(what, fmt, CONVERTIBLE)


def check_self_contained(fmt: str, header: bytes, what: str) -> None:
    """Raise :class:`VmdkExternalReferenceError` for a VMDK descriptor: it names other files,
    which for a download would resolve to whatever lies beside it (in the cache: other images).
    ``ensure`` converts only images that are one file (a sparse or stream-optimized VMDK, or an
    OVA holding one)."""
    if is_descriptor(fmt, header):
        from .errors import VmdkExternalReferenceError

        raise VmdkExternalReferenceError(
            f"{what} is a VMDK descriptor, which names other files: ensure converts only "
            "self-contained images (a monolithicSparse or streamOptimized VMDK, or an OVA); "
            "use `pyimagecache convert` on a local descriptor and its extents",
            reference="its extent files",
            source=what,
        )


#: Bytes read to decide whether a file is evidently text rather than a disk.
TEXT_PROBE = 4096

#: File-name suffixes that claim a format, and the formats whose bytes honour the claim.
CLAIMS = {
    ".qcow2": (QCOW2,),
    ".qcow": (QCOW2, QCOW),
    ".vmdk": (VMDK,),
    ".vhd": (VHD,),
    ".vhdx": (VHDX,),
    ".vdi": (VDI,),
    ".ova": (TAR,),
    # Vagrant boxes are tar archives, often compressed, sometimes zip.
    ".box": (TAR, ZIP, *STREAMS),
}
#: Compression suffixes that wrap the claim of the name inside them (``x.qcow2.xz``).
_WRAPPERS = {".xz": XZ, ".gz": GZIP, ".zst": ZSTD, ".bz2": BZIP2}


def claimed(name: str) -> Tuple[Optional[Tuple[str, ...]], str]:
    """What the file name ``name`` claims, as (formats its bytes may be, or None when it makes
    no claim; the name of the payload inside, for a compression suffix).

    >>> claimed("noble.img")
    (None, 'noble.img')
    >>> claimed("disk.qcow2")
    (('qcow2',), 'disk.qcow2')
    >>> claimed("FreeBSD.qcow2.xz")
    (('xz',), 'FreeBSD.qcow2')
    """
    lower = name.lower()
    for suffix, fmt in _WRAPPERS.items():
        if lower.endswith(suffix):
            return (fmt,), name[: -len(suffix)]
    for suffix, formats in CLAIMS.items():
        if lower.endswith(suffix):
            return formats, name
    return None, name


def looks_like(head: bytes) -> Optional[str]:
    """What ``head`` (a file's first :data:`TEXT_PROBE` bytes, or all of a shorter file)
    evidently is when it is text and so no disk: ``"an HTML document"``, ``"an XML
    document"``, ``"a JSON document"`` or ``"text"``; None for anything binary. A disk's first
    sectors hold boot code, a partition table, a filesystem's superblock or zeros, never only
    printable text.

    >>> looks_like(b"<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>")
    'an HTML document'
    >>> looks_like(b'{"errors": [{"code": "NOT_FOUND"}]}'), looks_like(b"not found\\n")
    ('a JSON document', 'text')
    >>> looks_like(bytes(512)) is None, looks_like(b"\\xebc\\x90" + bytes(509)) is None
    (True, True)
    """
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    body = body.lstrip(b" \t\r\n")
    if not body or b"\0" in body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(body) - exc.start > 3:  # not just a character cut at the probe's end
            return None
        text = body[: exc.start].decode("utf-8")
    if not all(c.isprintable() or c in "\t\r\n\f\v" for c in text):
        return None
    start = text[:256].lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in text.lower():
        return "an HTML document"
    if start.startswith("<"):
        return "an XML document"
    if start.startswith(("{", "[")):
        return "a JSON document"
    return "text"


def not_a_disk(path: Union[str, os.PathLike[str]], fmt: str, name: str) -> Optional[str]:
    """Why the file at ``path``, detected as ``fmt`` and named ``name`` upstream, is evidently
    not a disk image, or None when it may be one: text (an error page, a listing, a portal),
    a raw image whose size is not a multiple of 512 bytes, or bytes that are not what the
    name claims (``.qcow2``, ``.vmdk``, ``.vhd``, ``.vhdx``, ``.vdi``, ``.ova``, ``.box``).

    >>> import pathlib, tempfile
    >>> page = pathlib.Path(tempfile.mkdtemp()) / "x.qcow2"
    >>> _ = page.write_bytes(b"<html>404 Not Found</html>\\n")
    >>> not_a_disk(page, "raw", "x.qcow2")
    'is an HTML document, not a disk image'
    """
    with open(path, "rb") as f:
        head = f.read(TEXT_PROBE)
        size = os.fstat(f.fileno()).st_size
    what = looks_like(head) if fmt == RAW else None
    if what is not None:
        return f"is {what}, not a disk image"
    claim, _ = claimed(name)
    if claim is not None and fmt not in claim:
        want = " or ".join(claim)
        return f"is named like a {want} image but its bytes are {_article(fmt)}"
    if fmt == RAW and size % 512:
        return f"is a raw image of {size} bytes, not a multiple of 512: no disk has that size"
    return None


def _article(fmt: str) -> str:
    return "raw data" if fmt == RAW else f"a {fmt} image"


def protocol_of(name: str) -> Optional[str]:
    """The ``json:`` or protocol prefix (``nbd``, ``http``, ``file``...) of a name an image
    gives for another file, as qemu reads it (a ``:`` before any ``/`` makes the rest a
    driver specification, not a path), or None for a plain path. pyimagecache never opens
    such a name: it would reach the network, a device, or any file the spelling can name.

    >>> protocol_of("json:{\\"file.filename\\": \\"/etc/shadow\\"}"), protocol_of("nbd:h:10809")
    ('json', 'nbd')
    >>> protocol_of("base.qcow2"), protocol_of("./a:b.qcow2")
    (None, None)
    """
    colon, slash = name.find(":"), name.find("/")
    if colon < 0 or 0 <= slash < colon:
        return None
    return name[:colon]


def is_descriptor(fmt: str, header: bytes) -> bool:
    """Whether ``header`` starts a VMDK text descriptor (not an extent holding the data)."""
    return fmt == VMDK and header.lstrip(b" \t\r\n").startswith(_VMDK_DESCRIPTOR)
