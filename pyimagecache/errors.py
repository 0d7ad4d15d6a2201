"""Every error the package raises derives from :class:`ImageCacheError`.

Callers catch one class; the subclasses say what went wrong well enough to act on (retry later,
re-pin the catalog, install an extra, free some space, report a corrupt image). Every error
survives pickling with its attributes (as urllib3's do, through ``__reduce__``), so it can be
raised in a worker process and caught in its parent.

The disk formats share one shape: ``<Format>Error`` is an :class:`ImageFormatError` (the
source is at fault), with ``<Format>CorruptError`` (a :class:`CorruptImageError`: it violates
the format) and ``<Format>UnsupportedError`` (an :class:`UnsupportedImageError`: valid, but
uses what the reader refuses) beneath it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional


class ImageCacheError(Exception):
    """Base class of every error raised by pyimagecache."""

    def with_message(self, message: str) -> ImageCacheError:
        """A copy of this error (same class, same attributes) saying ``message``."""
        return _rebuild(type(self), (message,), dict(self.__dict__))

    def __reduce__(self) -> Any:
        # Rebuild from the message alone, then restore the attributes: works for subclasses
        # whose __init__ takes other arguments than the message (the default pickling calls
        # cls(*self.args), which would not).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> ImageCacheError:  # type: ignore[type-arg]
    # An OSError subclass must be made by OSError's own __new__ (Exception's refuses it).
    base: Any = OSError if issubclass(cls, OSError) else Exception
    exc: ImageCacheError = base.__new__(cls, *args)
    base.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


# -- what the caller gave -----------------------------------------------------------------------


class InvalidArgumentError(ImageCacheError, ValueError):
    """A public function or the environment gave a value pyimagecache cannot use (a negative
    timeout, zero workers, a malformed digest or mirror); the message names the argument.
    Also a ValueError: it is a usage error, not a failure of the network or of an image."""


class ImageFileError(ImageCacheError, OSError):
    """A file given to pyimagecache could not be opened or read (missing, a directory, no
    permission, an I/O error). Also an OSError with ``errno``, ``strerror`` and ``filename``;
    :class:`ImageFileNotFoundError` is also a FileNotFoundError and
    :class:`ImageFilePermissionError` a PermissionError, so ``except FileNotFoundError`` keeps
    working."""

    def __init__(self, errno: int, strerror: str, filename: Optional[str] = None) -> None:
        OSError.__init__(self, errno, strerror, filename)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}" if self.filename else str(self.strerror)

    def __reduce__(self) -> Any:
        # OSError keeps the file name out of args: pass it back explicitly.
        return (_rebuild, (type(self), (self.errno, self.strerror, self.filename), self.__dict__))

    def with_message(self, message: str) -> ImageCacheError:
        return _rebuild(type(self), (self.errno, message, self.filename), dict(self.__dict__))


class ImageFileNotFoundError(ImageFileError, FileNotFoundError):
    """The file does not exist (also a FileNotFoundError)."""


class ImageFilePermissionError(ImageFileError, PermissionError):
    """The file may not be read (also a PermissionError)."""


def file_error(exc: OSError, filename: object = None) -> ImageFileError:
    """``exc`` (from opening or reading a file) as an :class:`ImageFileError` of the matching
    kind, naming ``filename`` (default: the one ``exc`` names).

    >>> err = file_error(FileNotFoundError(2, "No such file or directory"), "disk.img")
    >>> isinstance(err, FileNotFoundError), str(err)
    (True, 'disk.img: No such file or directory')
    """
    if isinstance(exc, ImageFileError):
        return exc
    cls: type[ImageFileError] = ImageFileError
    if isinstance(exc, FileNotFoundError):
        cls = ImageFileNotFoundError
    elif isinstance(exc, PermissionError):
        cls = ImageFilePermissionError
    name = exc.filename if filename is None else filename
    return cls(
        exc.errno or 0,
        exc.strerror or str(exc) or type(exc).__name__,
        None if name is None else str(name),
    )


# -- the source image ---------------------------------------------------------------------------


class ConversionError(ImageCacheError):
    """A source image could not be turned into a raw disk. Subclasses say whose fault it was:
    :class:`ImageFormatError` (the source) or :class:`OutputError` (writing the result)."""


class ImageFormatError(ConversionError):
    """The source image is at fault: corrupt, or in a format or feature not supported."""


class CorruptImageError(ImageFormatError):
    """The source violates its format (a bad field, table entry, marker or compressed unit);
    the message names the field or table index and its offset."""


class UnsupportedImageError(ImageFormatError):
    """The source is valid but uses something the reader refuses (encryption, a differencing
    disk, a missing parent or data file)."""


class UnsupportedFormatError(UnsupportedImageError):
    """The source is a disk or container format that is recognised but not converted.

    ``format`` names it and ``supported`` lists what is converted; nothing is cached for it.
    """

    def __init__(self, what: str, format: str, supported: tuple[str, ...]) -> None:
        super().__init__(
            f"{what} is a {format} image, which pyimagecache does not convert "
            f"(supported: {', '.join(supported)})"
        )
        self.what = what
        self.format = format
        self.supported = tuple(supported)


class ContainerError(CorruptImageError):
    """A compressed stream or archive (xz, gzip, zstd, bzip2, tar, OVA) is corrupt, truncated,
    or does not hold exactly one disk image."""


class ExternalReferenceError(UnsupportedImageError):
    """The image names something outside itself: a qcow2 backing or external data file, VMDK
    extents, a tar member that is a link or device or whose path leaves the archive, or a
    ``json:``/protocol name. A downloaded image must be self-contained (whatever it names
    would resolve on this machine, or in the cache); a local file may name local files, never
    a ``json:`` or protocol name. ``reference`` is what it names, ``source`` the image.
    """

    def __init__(self, message: str, *, reference: str = "", source: str = "") -> None:
        super().__init__(message)
        self.reference = reference
        self.source = source


class NotADiskError(ImageFormatError):
    """What was fetched is evidently not a disk image: an HTML, XML or JSON document or other
    text (an error page, a directory listing, a captive portal), a raw image whose size is
    not a multiple of 512 bytes, or bytes that are not the format its name claims.
    ``looks_like`` says what it looks like instead."""

    def __init__(self, message: str, *, looks_like: str = "") -> None:
        super().__init__(message)
        self.looks_like = looks_like


class Qcow2Error(ImageFormatError):
    """A qcow2 image could not be read. Messages name the field or table entry at fault."""


class Qcow2CorruptError(Qcow2Error, CorruptImageError):
    """The image violates the qcow2 format (a bad field, table entry or compressed cluster)."""


class Qcow2UnsupportedError(Qcow2Error, UnsupportedImageError):
    """The image is valid qcow2 but uses something this reader refuses (encryption, unknown
    incompatible features, a missing backing or data file)."""


class Qcow2ExternalReferenceError(Qcow2UnsupportedError, ExternalReferenceError):
    """A qcow2 names a backing or external data file that may not be opened (any file, for a
    download; a ``json:`` or protocol name, always)."""


class VmdkError(ImageFormatError):
    """A VMDK image (sparse extent, stream-optimized extent or descriptor) could not be read."""


class VmdkCorruptError(VmdkError, CorruptImageError):
    """The VMDK violates the format (header, grain directory or table, grain marker)."""


class VmdkUnsupportedError(VmdkError, UnsupportedImageError):
    """A valid VMDK this reader refuses (seSparse, vmfsSparse, a delta link, a missing
    extent)."""


class VmdkExternalReferenceError(VmdkUnsupportedError, ExternalReferenceError):
    """A VMDK names extents in other files: a descriptor, for a download; a ``json:`` or
    protocol name, always."""


class VhdError(ImageFormatError):
    """A VHD (Virtual PC / Azure) image could not be read."""


class VhdCorruptError(VhdError, CorruptImageError):
    """The VHD violates the format (footer, dynamic header, BAT)."""


class VhdUnsupportedError(VhdError, UnsupportedImageError):
    """A valid VHD this reader refuses (a differencing disk)."""


class VhdxError(ImageFormatError):
    """A VHDX (Hyper-V) image could not be read."""


class VhdxCorruptError(VhdxError, CorruptImageError):
    """The VHDX violates the format (headers, region table, metadata, BAT, log)."""


class VhdxUnsupportedError(VhdxError, UnsupportedImageError):
    """A valid VHDX this reader refuses (a differencing disk, a log it will not replay)."""


class VdiError(ImageFormatError):
    """A VDI (VirtualBox) image could not be read."""


class VdiCorruptError(VdiError, CorruptImageError):
    """The VDI violates the format (header, block map)."""


class VdiUnsupportedError(VdiError, UnsupportedImageError):
    """A valid VDI this reader refuses (a differencing image, an unknown image type)."""


class OutputError(ConversionError):
    """Writing the raw disk failed (no space, I/O error, read-only filesystem, permission): the
    source is not at fault, and the cache keeps it for the next run."""


class InsufficientSpaceError(OutputError):
    """Too little free space for a download or conversion, found before anything was written.

    ``path`` is where it would have been written, ``needed`` and ``free`` are bytes.
    """

    def __init__(self, path: str, needed: int, free: int, what: str = "") -> None:
        doing = f" for {what}" if what else ""
        super().__init__(
            f"not enough free space{doing} at {path}: {needed} bytes needed, {free} free"
        )
        self.path = path
        self.needed = needed
        self.free = free
        self.what = what


class MissingExtraError(ImageCacheError):
    """An optional dependency is needed for this input; the message names the extra to install."""

    def __init__(self, what: str, extra: str, package: str) -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra: pip install 'pyimagecache[{extra}]' "
            f"(or pip install {package})"
        )
        self.what = what
        self.extra = extra
        self.package = package


# -- downloads ----------------------------------------------------------------------------------


class DownloadError(ImageCacheError):
    """A download failed. ``url`` and ``path`` say what and where; ``done`` how far it got;
    ``status`` is the HTTP status that ended it, when a server refused (404, 410, 401, ...)."""

    def __init__(
        self,
        message: str,
        *,
        url: Optional[str] = None,
        path: Optional[str] = None,
        done: Optional[int] = None,
        total: Optional[int] = None,
        status: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.path = path
        self.done = done
        self.total = total
        self.status = status


class ChecksumMismatchError(DownloadError):
    """Downloaded bytes do not match the expected digest; they never reach the destination.

    ``algorithm`` is ``sha256`` or ``sha512``; ``expected`` and ``actual`` are hex digests.
    """

    def __init__(
        self,
        url: str,
        expected: str,
        actual: str,
        path: Optional[str] = None,
        algorithm: str = "sha256",
    ) -> None:
        name = {"sha256": "SHA-256", "sha512": "SHA-512"}.get(algorithm, algorithm.upper())
        super().__init__(
            f"{name} mismatch for {url}: expected {expected}, got {actual}", url=url, path=path
        )
        self.expected = expected
        self.actual = actual
        self.algorithm = algorithm


class DigestError(InvalidArgumentError):
    """A digest given by the caller or a catalog is malformed (wrong length, not hex, an
    unknown algorithm). Also a ValueError: it is a usage error, not a failure of the network."""


class DigestConflictError(DigestError):
    """A digest given to ``ensure`` disagrees with the one the cached entry was verified
    against: almost always a typo. The entry is left untouched. ``entry`` is the cached raw
    disk, ``algorithm``, ``given`` and ``recorded`` the two digests."""

    def __init__(
        self,
        message: str,
        *,
        entry: str = "",
        algorithm: str = "",
        given: str = "",
        recorded: str = "",
    ) -> None:
        super().__init__(message)
        self.entry = entry
        self.algorithm = algorithm
        self.given = given
        self.recorded = recorded


# -- catalog and cache --------------------------------------------------------------------------


class ChangedEntryError(ImageCacheError):
    """A cached raw disk changed after it was published (its size, modification time or
    content differ from its sidecar record: a VM wrote into it, or someone edited it), and it
    cannot be rebuilt now (offline, no kept source). ``entry`` is the raw, ``change`` says what
    differs; the message says how to repair it."""

    def __init__(self, message: str, *, entry: str = "", change: str = "") -> None:
        super().__init__(message)
        self.entry = entry
        self.change = change


class CatalogError(ImageCacheError):
    """The catalog is malformed; the message names the alias and field."""


class UnknownImageError(ImageCacheError):
    """Neither a catalog alias nor a URL."""


class UnsupportedArchError(ImageCacheError):
    """The alias has no image for the requested architecture."""


class DiskCopyError(ImageCacheError):
    """copy_disk refused or failed (size smaller than the source, unreadable source, ...)."""


class RefreshError(ImageCacheError):
    """The catalog refresher could not resolve one or more aliases."""


# -- OCI registries -----------------------------------------------------------------------------


class InvalidReferenceError(InvalidArgumentError):
    """An ``oci://`` or ``docker://`` image reference is malformed; the message says which part.
    Also a ValueError: it is a usage error, not a failure of the network."""


class RegistryError(DownloadError):
    """A container registry refused a request or answered with something unusable (a manifest
    that is too large, does not match its digest, or holds no disk). ``registry`` and
    ``repository`` say where; ``status`` (from DownloadError) is the HTTP status, if any."""

    def __init__(
        self,
        message: str,
        *,
        registry: Optional[str] = None,
        repository: Optional[str] = None,
        url: Optional[str] = None,
        status: Optional[int] = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.registry = registry
        self.repository = repository


class RegistryAuthError(RegistryError):
    """The registry would not authenticate us: no credentials for a private repository, wrong
    ones (the message names the registry and the user, never a password or token), or
    credentials kept by a helper program, which pyimagecache does not run."""


class NoMatchingPlatformError(RegistryError, UnsupportedArchError):
    """An image index has no manifest for the requested architecture; ``platforms`` lists the
    ones it has (``os/architecture[/variant]``)."""

    def __init__(
        self,
        message: str,
        *,
        platforms: tuple[str, ...] = (),
        registry: Optional[str] = None,
        repository: Optional[str] = None,
    ) -> None:
        super().__init__(message, registry=registry, repository=repository)
        self.platforms = tuple(platforms)
