"""``fetch_disk``: the disk blob of a resolved image into a file, resumably and verified.

The blob goes through the package's resumable downloader (``<file>.part`` hashed as written,
Range/If-Range after a kill, the blob digest checked before the rename), with the registry's
Authorization, which is not sent along a redirect to blob storage elsewhere. For a
containerDisk the layer is downloaded to ``<dest>.layer`` first, then the one file under
``disk/`` is streamed out of it (gzip and zstd decoded on the fly) sparsely into ``dest``,
and the layer is removed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Union

from .. import cachefiles
from .._atomic import publish
from .._progress import ProgressCallback
from ..cachefiles import temp_sibling
from ..download.to_file import Watch, fetch_verified
from ..errors import ChecksumMismatchError, DownloadError, ImageFormatError, RegistryError
from ..hashing import Expected, file_digests
from ..settings import Settings
from .layout import AS_IS, CONTAINERDISK_MEMBER
from .manifest import Descriptor
from .resolver import Resolved
from .transport import Registry

log = logging.getLogger("pyimagecache")

#: Appended to ``dest`` for a containerDisk's layer while the disk is taken out of it.
LAYER_SUFFIX = cachefiles.LAYER

PathArg = Union[str, "os.PathLike[str]"]


def layer_path(dest: PathArg) -> Path:
    """Where :func:`fetch_disk` keeps a containerDisk layer for ``dest`` (and its ``.part``)."""
    dest = Path(dest)
    return dest.with_name(dest.name + LAYER_SUFFIX)


def blob_expected(blob: Descriptor) -> Expected:
    """The blob's digest as the downloader checks it."""
    algorithm, _, hexdigest = blob.digest.partition(":")
    return Expected.parse(**{algorithm: hexdigest})


def fetch_disk(
    resolved: Resolved,
    dest: PathArg,
    settings: Optional[Settings] = None,
    progress: Optional[ProgressCallback] = None,
    watch: Optional[Watch] = None,
    *,
    expected: Optional[Expected] = None,
) -> Path:
    """Download the disk of ``resolved`` to ``dest`` and return dest: the blob itself (an
    artifact), or the file under ``disk/`` of a containerDisk layer; in whatever format it is.

    The blob is verified against its digest while written; ``expected`` (a catalog pin) must
    match too: for an artifact in the same pass, for a containerDisk on the extracted file.
    A killed download resumes from ``<dest>.part`` (or ``<dest>.layer.part``) on the next call.
    ``watch`` (ensure's overlap) follows an artifact's download; a containerDisk's file only
    appears once complete. ``progress(done, total)`` follows the download, then the extraction.
    """
    dest = Path(dest)
    settings = settings if settings is not None else Settings.from_environment()
    registry = Registry(resolved.registry, resolved.repository, settings)
    wanted = blob_expected(resolved.blob)
    if resolved.extract == AS_IS:
        _download(
            registry,
            resolved.blob,
            dest,
            _combined(wanted, expected, resolved),
            settings,
            progress,
            watch,
        )
        return dest
    layer = layer_path(dest)
    if not _complete(layer, wanted):
        _download(registry, resolved.blob, layer, wanted, settings, progress, None)
    _extract(layer, dest, expected, progress)
    return dest


def _combined(blob: Expected, pin: Optional[Expected], resolved: Resolved) -> Expected:
    if not pin:
        return blob
    differs = blob.agrees_with(pin)
    if differs is not None:
        raise RegistryError(
            f"{resolved.reference}: the blob {resolved.blob.digest} is not the pinned "
            f"{differs} {getattr(pin, differs)}",
            registry=resolved.registry,
            repository=resolved.repository,
        )
    return Expected(blob.sha256 or pin.sha256, blob.sha512 or pin.sha512)


def _complete(layer: Path, wanted: Expected) -> bool:
    """A layer left by a run killed during extraction is reused once it checks out."""
    try:
        return layer.exists() and wanted.matches(file_digests(layer, wanted.algorithms))
    except OSError:
        return False


def _download(
    registry: Registry,
    blob: Descriptor,
    dest: Path,
    expected: Expected,
    settings: Settings,
    progress: Optional[ProgressCallback],
    watch: Optional[Watch],
) -> None:
    url = registry.blob_url(blob.digest)
    registry.login()
    for attempt in range(2):
        try:
            fetch_verified(
                url, dest, expected, settings, progress, watch, headers=registry.authorization()
            )
            return
        except DownloadError as exc:
            if exc.status == 401 and attempt == 0:
                log.debug("%s: token refused during the download; authenticating again", url)
                registry.login()  # the stale token earns a new challenge; resumes from .part
                continue
            if exc.status == 404:
                raise RegistryError(
                    f"{registry.where}: blob {blob.digest} is not in the repository (HTTP 404)",
                    registry=registry.registry,
                    repository=registry.repository,
                    url=url,
                    status=404,
                ) from exc
            raise


def _extract(
    layer: Path, dest: Path, expected: Optional[Expected], progress: Optional[ProgressCallback]
) -> None:
    """The one file under disk/ of ``layer`` into ``dest``; the layer is removed once done, or
    when it is at fault (no retry can help a layer that matched its digest)."""
    from ..unpack import unpack

    scratch = temp_sibling(dest)
    try:
        unpack(layer, scratch, progress=progress, rule=CONTAINERDISK_MEMBER)
        if expected:
            actual = file_digests(scratch, expected.algorithms)
            expected.check(actual, f"disk/ of {layer.name}", str(dest))
        publish(scratch, dest)
    except (ImageFormatError, ChecksumMismatchError):
        _remove(layer)
        raise
    finally:
        _remove(scratch)
    _remove(layer)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
