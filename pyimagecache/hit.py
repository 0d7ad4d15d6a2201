"""A cache hit for an alias of the embedded catalog, found with the fewest imports.

``ensure`` decides a hit by one stat and the sidecar (:func:`pyimagecache.cache.examine`): the
raw exists, and its size and modification time are those recorded when it was published
(:func:`pyimagecache.sidecar.changed_since_published`). This is that decision for the most
common call, a catalog alias, made without the parsed, validated catalog or the rest of the
library, so that ``pyimagecache ensure ALIAS`` on a hit costs little more than starting Python.
It answers only what it can answer exactly as ``ensure`` would; everything else (a user
catalog, a URL, a digest given, a missing or changed raw, an unknown arch) is None, and the
caller takes the full path, which says what is wrong or does the work.
"""

from __future__ import annotations

import os

from .arches import ARCHES, normalize_arch
from .cachedir import cache_dir_path
from .cachefiles import RAW, cache_stem
from .catalogfile import decode_document, embedded_catalog_bytes, pinned_snapshot
from .environment import environ
from .sidecar import changed_since_published, read_sidecar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Union

_document: Any = None


def find_hit(
    alias: str, cache_dir: Union[str, os.PathLike[str], None] = None, arch: Optional[str] = None
) -> Optional[str]:
    """The path of the complete raw disk ``ensure(alias, cache_dir, arch=arch)`` would hand
    out without any work, or None when ``ensure`` has more to do or to say.

    >>> find_hit("debian-12", "/nonexistent") is None
    True
    """
    raw = entry_path(alias, cache_dir, arch)
    if raw is None:
        return None
    try:
        st = os.stat(raw)
    except OSError:
        return None
    if changed_since_published(st, read_sidecar(raw)):
        return None
    return raw


def entry_path(
    alias: str, cache_dir: Union[str, os.PathLike[str], None] = None, arch: Optional[str] = None
) -> Optional[str]:
    """Where ``ensure`` keeps ``alias``'s raw disk for ``arch`` (default: this machine's),
    named from the embedded catalog's pin; None when this cannot say (a user catalog, an
    unknown alias or arch: the full path decides and explains)."""
    global _document
    if environ("PYIMAGECACHE_CATALOG"):
        return None  # a catalog of the user's: the full path parses and validates it first
    key = normalize_arch(arch)
    if key not in ARCHES:
        return None
    if _document is None:
        try:
            _document = decode_document(embedded_catalog_bytes(), "embedded catalog.json")
        except Exception:  # the full path reports it properly
            return None
    snapshot = pinned_snapshot(_document, alias, key)
    if snapshot is None or "/" in alias or "/" in snapshot:
        return None
    return os.path.join(cache_dir_path(cache_dir), cache_stem(alias, snapshot, key) + RAW)
