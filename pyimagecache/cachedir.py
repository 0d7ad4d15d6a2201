"""Where the cache lives and what its files are called.

Every name built here is a single path component of ``[A-Za-z0-9._-]`` that does not start with
a dot, so nothing derived from a URL or an alias can leave the cache directory or pass for one of
the hidden temporary files that ``cache prune`` removes.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from .catalog import cache_stem
from .errors import ImageCacheError

# Suffixes that name a disk image or the container around one; peeled off a URL basename to get
# the stem, and kept (as the source's extension) so the fetched file looks like what it is.
DISK_EXTENSIONS = (".raw", ".img", ".qcow2", ".qcow", ".disk")
CONTAINER_EXTENSIONS = (".xz", ".gz", ".zst", ".zstd", ".tar", ".tgz", ".txz")
_KNOWN = DISK_EXTENSIONS + CONTAINER_EXTENSIONS

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_BASE = 80  # leaves room for "-<hash>", the extension and ".part.meta" under NAME_MAX
URL_HASH_LEN = 12
URL_SCHEMES = ("http", "https", "file")


def default_cache_dir() -> Path:
    """``$PYIMAGECACHE_CACHE_DIR``, else the platform cache directory + ``pyimagecache``:
    ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows."""
    env = os.environ.get("PYIMAGECACHE_CACHE_DIR")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pyimagecache"


def resolve_cache_dir(cache_dir: Union[str, os.PathLike[str], None]) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def is_url(text: str) -> bool:
    """True for the URL schemes ensure() accepts (http, https, file)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def split_extension(name: str) -> Tuple[str, str]:
    """``("debian-12", ".tar.xz")`` from ``debian-12.tar.xz``: peel up to three known disk or
    container suffixes; an unknown last suffix stays part of the stem.

    >>> split_extension("ubuntu-24.04-server-cloudimg-amd64.img")
    ('ubuntu-24.04-server-cloudimg-amd64', '.img')
    """
    stem, ext = name, ""
    for _ in range(3):
        dot = stem.rfind(".")
        if dot <= 0 or stem[dot:].lower() not in _KNOWN:
            break
        stem, ext = stem[:dot], stem[dot:] + ext
    return stem, ext


def url_basename(url: str) -> str:
    """The last path component of ``url``, without query or fragment, percent-decoded."""
    path = urlsplit(url).path
    return unquote(path.rstrip("/").rpartition("/")[2])


def sanitise(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9._-]``, no leading dots or dashes, never empty."""
    clean = _UNSAFE.sub("_", name).lstrip(".-_")
    return clean or "image"


def url_hash(url: str) -> str:
    import hashlib  # not on the alias hit path: it costs a few ms to import

    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:URL_HASH_LEN]


@dataclass(frozen=True)
class EntryNames:
    """File names of one cache entry: the raw disk and the fetched source (a raw source is
    renamed onto the raw disk once it is verified and recognised as raw)."""

    raw: str
    source: str

    @property
    def sidecar(self) -> str:
        return self.raw + ".json"

    @property
    def lock(self) -> str:
        return self.raw + ".lock"


def alias_names(alias: str, snapshot: str, arch: str, url: str) -> EntryNames:
    """``<alias>-<snapshot>-<arch>.raw``; the source keeps the URL's extension.

    >>> alias_names("debian-12", "20260601", "amd64", "https://h/d/disk.tar.xz").source
    'debian-12-20260601-amd64.tar.xz'
    """
    stem = cache_stem(alias, snapshot, arch)
    _, ext = split_extension(sanitise(url_basename(url)))
    return _entry(stem, ext)


def url_names(url: str) -> EntryNames:
    """Names for a literal URL: sanitised basename with its disk extension stripped, plus a
    short hash of the whole URL, so two URLs sharing a basename never collide.

    >>> url_names("https://example.org/images/x.raw?sig=1").raw
    'x-5a44d152a951.raw'
    """
    base, ext = split_extension(sanitise(url_basename(url)))
    base = base[:_MAX_BASE].rstrip(".") or "image"
    stem = f"{base}-{url_hash(url)}"
    return _entry(stem, ext)


def _entry(stem: str, ext: str) -> EntryNames:
    # A source is never fetched to the raw disk's name, even when the URL ends in .raw:
    # existence of the raw means "complete raw disk", and the source is only known to be
    # raw once its bytes have been looked at.
    ext = ext.lower()
    source = stem + (".raw.src" if ext == ".raw" else ext)
    return _checked(EntryNames(raw=stem + ".raw", source=source))


def _checked(names: EntryNames) -> EntryNames:
    # Defence in depth: the regexes above already guarantee this.
    for name in (names.raw, names.source):
        if (
            not name
            or name.startswith(".")
            or _UNSAFE.search(name)
            or os.path.basename(name) != name
        ):
            raise ImageCacheError(f"refusing unsafe cache file name {name!r}")
    return names


def entry_stem(filename: str) -> Optional[str]:
    """The entry stem a cache file belongs to (``x.img.part`` -> ``x``), for prune and list;
    None for hidden or foreign files."""
    name = filename
    for suffix in (".part.meta", ".part.lock", ".part", ".json", ".lock", ".src"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem, ext = split_extension(name)
    return stem if ext and not name.startswith(".") else None
