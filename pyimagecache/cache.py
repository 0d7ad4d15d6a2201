"""``ensure``: a catalog alias or URL in, the path of a complete raw disk in the cache out.

Only complete, verified files are ever published (atomic rename), so on the hot path existence
means complete: a hit costs one stat, no network, no hashing. A miss takes the entry's lock
(other processes and threads wait, then find the raw), fetches the source (resuming a partial
left by a killed run), converts it and records a sidecar ``<raw>.json``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

from . import formats
from ._lock import FileLock
from ._progress import ProgressCallback
from .cachedir import EntryNames, alias_names, is_url, resolve_cache_dir, url_names
from .catalog import CatalogSource, lookup, resolve_catalog, suggest
from .errors import (
    CatalogError,
    ConversionError,
    ImageCacheError,
    MissingExtraError,
    UnknownImageError,
    UnsupportedFormatError,
)


def _log(message: str, *args: object) -> None:
    # logging is imported on the slow path only; a cache hit does not pay for it.
    import logging

    logging.getLogger("pyimagecache").info(message, *args)

PathLike = Union[str, "os.PathLike[str]"]
#: Progress callback for one phase ("download", "convert"), or None for no progress.
PhaseProgress = Callable[[str], Optional[ProgressCallback]]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Request:
    """What ensure() was asked for, resolved: where to fetch, what to expect, what to call it."""

    url: str
    sha256: Optional[str]
    names: EntryNames
    alias: Optional[str] = None
    snapshot: Optional[str] = None
    arch: Optional[str] = None

    @property
    def label(self) -> str:
        return self.alias or self.url


def resolve(
    url_or_alias: str,
    *,
    arch: Optional[str] = None,
    sha256: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
) -> Request:
    """Turn an alias or URL into a :class:`Request` without touching the cache or network."""
    if sha256 is not None:
        if not _SHA256.fullmatch(sha256):
            raise UnknownImageError(f"sha256 must be 64 hex digits, got {sha256!r}")
        sha256 = sha256.lower()
    if is_url(url_or_alias):
        return Request(url=url_or_alias, sha256=sha256, names=url_names(url_or_alias))
    entries = resolve_catalog(catalog)
    if url_or_alias not in entries:
        raise UnknownImageError(_unknown_message(url_or_alias, entries))
    info, key, image = lookup(url_or_alias, arch, entries)
    if sha256 is not None and sha256 != image.sha256:
        raise CatalogError(
            f"sha256 {sha256} does not match the catalog's pin for {url_or_alias} on {key} "
            f"({image.sha256})"
        )
    return Request(
        url=image.url,
        sha256=image.sha256,
        names=alias_names(url_or_alias, info.snapshot, key, image.url),
        alias=url_or_alias,
        snapshot=info.snapshot,
        arch=key,
    )


def _unknown_message(name: str, entries: object) -> str:
    message = f"{name!r} is neither a catalog alias nor an http(s):// or file:// URL"
    close = suggest(name, entries)  # type: ignore[arg-type]
    if close:
        message += f"; did you mean {', '.join(close)}?"
    elif os.path.exists(name):
        message += f"; for a local file use file://{os.path.abspath(name)}"
    else:
        message += " (see `pyimagecache list`)"
    return message


def ensure(
    url_or_alias: str,
    cache_dir: Optional[PathLike] = None,
    *,
    arch: Optional[str] = None,
    sha256: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
    progress: Optional[ProgressCallback] = None,
    keep_source: bool = False,
) -> Path:
    """Return the path of a complete raw disk for a catalog alias or an http(s)/file URL,
    downloading (verified) and converting it on the first call, instantly afterwards.

    ``cache_dir`` defaults to ``$PYIMAGECACHE_CACHE_DIR`` or the platform cache directory;
    ``arch`` to this machine's (amd64/arm64). A literal URL is unverified unless ``sha256`` is
    given. ``progress(done, total)`` is called during the download, then the conversion.
    ``catalog`` (a JSON path or parsed entries) replaces the embedded catalog.

    >>> disk = ensure("debian-12")  # doctest: +SKIP
    >>> disk.name  # doctest: +SKIP
    'debian-12-20260601-2496-amd64.raw'
    """
    return ensure_phased(
        url_or_alias,
        cache_dir,
        arch=arch,
        sha256=sha256,
        catalog=catalog,
        progress_for=lambda phase: progress,
        keep_source=keep_source,
    )


def ensure_phased(
    url_or_alias: str,
    cache_dir: Optional[PathLike] = None,
    *,
    arch: Optional[str] = None,
    sha256: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
    progress_for: PhaseProgress = lambda phase: None,
    keep_source: bool = False,
) -> Path:
    """ensure() with one progress callback per phase ("download", "convert"), for the CLI."""
    request = resolve(url_or_alias, arch=arch, sha256=sha256, catalog=catalog)
    directory = resolve_cache_dir(cache_dir)
    raw = directory / request.names.raw
    if raw.exists() and _still_valid(request, raw):
        return raw
    return build(request, directory, progress_for, keep_source=keep_source)


def _still_valid(request: Request, raw: Path) -> bool:
    # Alias entries are named by their pinned snapshot, so existence is enough. A URL entry
    # fetched without a checksum must match one given now, per its sidecar (no re-hash).
    if request.alias is not None or request.sha256 is None:
        return True
    return read_sidecar(raw).get("sha256") == request.sha256


def read_sidecar(raw: Path) -> Dict[str, object]:
    """The sidecar of ``raw`` as a dict; empty when missing or unreadable."""
    try:
        data = json.loads((raw.parent / (raw.name + ".json")).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def build(
    request: Request, directory: Path, progress_for: PhaseProgress, *, keep_source: bool = False
) -> Path:
    """The slow path of ensure(): under the entry's lock, fetch, convert, publish, record."""
    names = request.names
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / names.raw
    source = directory / names.source
    with FileLock(directory / names.lock):
        if raw.exists():
            if _still_valid(request, raw):
                return raw  # another process or thread finished it while we waited
            _log("%s does not match sha256 %s; fetching again", raw, request.sha256)
            _remove(raw, directory / names.sidecar, source)
        source_sha = _obtain_source(request, source, progress_for("download"))
        fmt = formats.detect_file(source)
        try:
            formats.check_convertible(fmt, f"{request.label} ({source.name})")
        except UnsupportedFormatError:
            _remove(source)  # the verified bytes are what upstream serves: no retry helps
            raise
        try:
            _convert(source, raw, fmt, progress_for("convert"))
        except MissingExtraError:
            raise  # the source is fine; installing the extra and retrying will use it
        except UnsupportedFormatError:
            _remove(raw, source)  # e.g. a tar holding a format we do not convert
            raise
        except (ImageCacheError, OSError, EOFError, ValueError) as exc:
            _remove(raw, source)
            raise ConversionError(
                f"{request.label}: converting {source.name} ({fmt}) failed, removed it: {exc}"
            ) from exc
        if fmt != formats.RAW and not keep_source:
            _remove(source)
        _write_sidecar(request, raw, fmt, source_sha)
    return raw


def _obtain_source(request: Request, source: Path, progress: Optional[ProgressCallback]) -> str:
    """Fetch the source unless a complete one is already there; return its SHA-256."""
    if source.exists():
        # Left by keep_source or by a run killed during conversion; published atomically, so
        # complete. Re-hash it when a checksum is expected, since we cannot know how it got here.
        actual = _sha256_file(source)
        if request.sha256 is None or actual == request.sha256:
            _log("%s: reusing downloaded %s", request.label, source.name)
            return actual
        _log("%s: %s does not match the expected sha256; fetching again", request.label, source)
        _remove(source)
    from .download import fetch

    _log(
        "%s: downloading %s (first run, this can take a few minutes)", request.label, request.url
    )
    fetch(request.url, source, sha256=request.sha256, progress=progress)
    return request.sha256 if request.sha256 is not None else _sha256_file(source)


def _convert(source: Path, raw: Path, fmt: str, progress: Optional[ProgressCallback]) -> None:
    from ._atomic import publish, temp_sibling

    if fmt == formats.RAW:
        publish(source, raw)  # the verified download itself is the disk
        return
    from .converter import convert

    if fmt in formats.DISK_FORMATS:
        convert(source, raw, progress=progress, sync=True)
        return
    from .unpack import unpack

    scratch = temp_sibling(raw)
    try:
        payload = unpack(source, scratch, progress=progress)
        if payload in formats.DISK_FORMATS:
            convert(scratch, raw, progress=progress, sync=True)
        else:
            publish(scratch, raw)
    finally:
        _remove(scratch)


def _write_sidecar(request: Request, raw: Path, fmt: str, source_sha: str) -> None:
    from ._atomic import atomic_output

    record = {
        "url": request.url,
        "sha256": source_sha,
        "verified": request.sha256 is not None,
        "alias": request.alias,
        "snapshot": request.snapshot,
        "arch": request.arch,
        "source_format": fmt,
        "size": raw.stat().st_size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with atomic_output(raw.parent / request.names.sidecar) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
