"""pyimagecache: pinned cloud images turned into verified, cached raw VM disks.

>>> import pyimagecache
>>> path = pyimagecache.ensure("debian-12")  # doctest: +SKIP

The public names are imported lazily so that ``import pyimagecache`` (and every CLI run) stays
fast: a cache hit must not pay for urllib3 or the qcow2 engine.
"""

from __future__ import annotations

from ._lazy import lazy_names

TYPE_CHECKING = False  # typing is not imported at run time: it costs more than a cache hit

if TYPE_CHECKING:
    from .cache import ensure
    from .catalog import ArchImage, ImageInfo, aliases
    from .converter import convert
    from .diskcopy import copy_disk
    from .download import fetch
    from .errors import (
        CatalogError,
        ChangedEntryError,
        ChecksumMismatchError,
        ContainerError,
        ConversionError,
        CorruptImageError,
        DigestConflictError,
        DigestError,
        DiskCopyError,
        DownloadError,
        ExternalReferenceError,
        ImageCacheError,
        ImageFileError,
        ImageFileNotFoundError,
        ImageFilePermissionError,
        ImageFormatError,
        InsufficientSpaceError,
        InvalidArgumentError,
        InvalidReferenceError,
        MissingExtraError,
        NoMatchingPlatformError,
        NotADiskError,
        OutputError,
        Qcow2CorruptError,
        Qcow2Error,
        Qcow2ExternalReferenceError,
        Qcow2UnsupportedError,
        RefreshError,
        RegistryAuthError,
        RegistryError,
        UnknownImageError,
        UnsupportedArchError,
        UnsupportedFormatError,
        UnsupportedImageError,
        VdiCorruptError,
        VdiError,
        VdiUnsupportedError,
        VhdCorruptError,
        VhdError,
        VhdUnsupportedError,
        VhdxCorruptError,
        VhdxError,
        VhdxUnsupportedError,
        VmdkCorruptError,
        VmdkError,
        VmdkExternalReferenceError,
        VmdkUnsupportedError,
    )
    from .opener import info, open_image
    from .settings import Retry, Settings, Timeout

__version__ = "0.1.0"


_LAZY = {
    "aliases": "catalog",
    "ImageInfo": "catalog",
    "ArchImage": "catalog",
    "ensure": "cache",
    "copy_disk": "diskcopy",
    "fetch": "download",
    "convert": "converter",
    "info": "opener",
    "open_image": "opener",
    "Settings": "settings",
    "Retry": "settings",
    "Timeout": "settings",
}

__all__ = [
    "ArchImage",
    "CatalogError",
    "ChangedEntryError",
    "ChecksumMismatchError",
    "ContainerError",
    "ConversionError",
    "CorruptImageError",
    "DigestConflictError",
    "DigestError",
    "DiskCopyError",
    "DownloadError",
    "ExternalReferenceError",
    "ImageCacheError",
    "ImageFileError",
    "ImageFileNotFoundError",
    "ImageFilePermissionError",
    "ImageFormatError",
    "ImageInfo",
    "InsufficientSpaceError",
    "InvalidArgumentError",
    "NoMatchingPlatformError",
    "NotADiskError",
    "RegistryAuthError",
    "RegistryError",
    "InvalidReferenceError",
    "MissingExtraError",
    "OutputError",
    "Qcow2CorruptError",
    "Qcow2Error",
    "Qcow2ExternalReferenceError",
    "Qcow2UnsupportedError",
    "RefreshError",
    "Retry",
    "Settings",
    "Timeout",
    "UnknownImageError",
    "UnsupportedArchError",
    "UnsupportedFormatError",
    "UnsupportedImageError",
    "VdiCorruptError",
    "VdiError",
    "VdiUnsupportedError",
    "VhdCorruptError",
    "VhdError",
    "VhdUnsupportedError",
    "VhdxCorruptError",
    "VhdxError",
    "VhdxUnsupportedError",
    "VmdkCorruptError",
    "VmdkError",
    "VmdkExternalReferenceError",
    "VmdkUnsupportedError",
    "aliases",
    "convert",
    "copy_disk",
    "ensure",
    "fetch",
    "info",
    "open_image",
]


# Every error class (the names ending in "Error" above) comes from pyimagecache.errors.
_LAZY.update({name: "errors" for name in __all__ if name.endswith("Error")})

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
