"""Every error the package raises derives from :class:`ImageCacheError`.

Callers catch one class; the subclasses say what went wrong well enough to act on
(retry later, re-pin the catalog, install an extra, report a corrupt image).
"""

from __future__ import annotations

from typing import Optional


class ImageCacheError(Exception):
    """Base class of every error raised by pyimagecache."""


# -- qcow2 -------------------------------------------------------------------------------------


class Qcow2Error(ImageCacheError):
    """A qcow2 image could not be read. Messages name the field or table entry at fault."""


class Qcow2CorruptError(Qcow2Error):
    """The image violates the qcow2 format (a bad field, table entry or compressed cluster)."""


class Qcow2UnsupportedError(Qcow2Error):
    """The image is valid qcow2 but uses something this reader refuses (encryption, unknown
    incompatible features, a missing backing or data file)."""


class MissingExtraError(ImageCacheError):
    """An optional dependency is needed for this input; the message names the extra to install."""

    def __init__(self, what: str, extra: str, package: str) -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra: pip install 'pyimagecache[{extra}]' "
            f"(or pip install {package})"
        )
        self.extra = extra


class ConversionError(ImageCacheError):
    """A source image could not be turned into a raw disk (unknown format, bad container)."""


class UnsupportedFormatError(ConversionError):
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

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.what, self.format, self.supported))


# -- downloads ---------------------------------------------------------------------------------


class DownloadError(ImageCacheError):
    """A download failed. ``url`` and ``path`` say what and where; ``done`` how far it got."""

    def __init__(
        self,
        message: str,
        *,
        url: Optional[str] = None,
        path: Optional[str] = None,
        done: Optional[int] = None,
        total: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.path = path
        self.done = done
        self.total = total


class ChecksumMismatchError(DownloadError):
    """Downloaded bytes do not match the expected SHA-256; they never reach the destination."""

    def __init__(self, url: str, expected: str, actual: str, path: Optional[str] = None) -> None:
        super().__init__(
            f"SHA-256 mismatch for {url}: expected {expected}, got {actual}",
            url=url,
            path=path,
        )
        self.expected = expected
        self.actual = actual


# -- catalog and cache -------------------------------------------------------------------------


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
