"""What is in a cache directory, and clearing out what the catalog no longer pins.

Pruning never removes a file that a live process is working on: it first takes the entry's lock
(and the download's, for partials) without waiting, and skips the file when that fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from . import cachefiles
from ._lock import FileLock
from .catalog import ARCHES, ImageInfo, snapshot_of
from .sidecar import read_sidecar

_PARTIAL_GLOBS = (
    "*" + cachefiles.PART,
    "*" + cachefiles.PART_META,
    "*" + cachefiles.LAYER,
    cachefiles.STALE_GLOB,
)


@dataclass(frozen=True)
class Entry:
    """One raw disk in the cache. ``pinned`` is None for literal-URL entries (no snapshot)."""

    path: Path
    apparent: int
    allocated: int
    alias: Optional[str]
    snapshot: Optional[str]
    arch: Optional[str]
    url: Optional[str]
    pinned: Optional[bool]
    created: Optional[str]
    fallback_from: Optional[str] = None  # the aged-out pinned snapshot this one replaced


def _pinned_stems(entries: Mapping[str, ImageInfo]) -> Dict[str, Tuple[str, str, str]]:
    return {
        cachefiles.cache_stem(alias, snapshot_of(info, arch), arch): (
            alias,
            snapshot_of(info, arch),
            arch,
        )
        for alias, info in entries.items()
        for arch in info.arch
    }


def _describe(
    stem: str,
    sidecar: Dict[str, object],
    pinned: Dict[str, Tuple[str, str, str]],
    entries: Mapping[str, ImageInfo],
) -> Tuple[Optional[str], Optional[str], Optional[str], Optional[bool]]:
    if stem in pinned:
        p_alias, p_snapshot, p_arch = pinned[stem]
        return p_alias, p_snapshot, p_arch, True
    alias, snapshot, arch = (sidecar.get(k) for k in ("alias", "snapshot", "arch"))
    if isinstance(alias, str):
        return (
            alias,
            snapshot if isinstance(snapshot, str) else None,
            arch if isinstance(arch, str) else None,
            False,
        )
    if sidecar.get("url") is not None or cachefiles.is_url_stem(stem):
        return None, None, None, None
    for key in ARCHES:
        if stem.endswith("-" + key):
            # An alias entry without its sidecar: recover alias and snapshot where we can.
            body = stem[: -len(key) - 1]
            for name in sorted(entries, key=len, reverse=True):
                if body.startswith(name + "-"):
                    return name, body[len(name) + 1 :], key, False
            return None, None, key, False
    return None, None, None, None


def list_entries(directory: Path, entries: Mapping[str, ImageInfo]) -> List[Entry]:
    """Every ``*.raw`` in ``directory``, sorted by name, with size and pin status."""
    pinned = _pinned_stems(entries)
    out: List[Entry] = []
    for raw in sorted(Path(directory).glob("*" + cachefiles.RAW)):
        try:
            st = raw.stat()
        except FileNotFoundError:
            continue  # pruned or replaced while we looked
        sidecar = read_sidecar(raw)
        stem = raw.name[: -len(cachefiles.RAW)]
        alias, snapshot, arch, is_pinned = _describe(stem, sidecar, pinned, entries)
        url, created, instead = (sidecar.get(k) for k in ("url", "created", "fallback_from"))
        out.append(
            Entry(
                path=raw,
                apparent=st.st_size,
                allocated=getattr(st, "st_blocks", 0) * 512 or st.st_size,
                alias=alias,
                snapshot=snapshot,
                arch=arch,
                url=url if isinstance(url, str) else None,
                pinned=is_pinned,
                created=created if isinstance(created, str) else None,
                fallback_from=instead if isinstance(instead, str) else None,
            )
        )
    return out


@dataclass
class PruneResult:
    removed: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)  # in use by a live process
    freed: int = 0


def prune(
    directory: Path, entries: Mapping[str, ImageInfo], *, dry_run: bool = False
) -> PruneResult:
    """Remove entries whose snapshot the catalog no longer pins (raw, sidecar, sources, lock)
    and stale partials (``*.part``, ``*.part.meta``, hidden temporaries of killed writers)."""
    directory = Path(directory)
    result = PruneResult()
    for entry in list_entries(directory, entries):
        if entry.pinned is not False:
            continue
        stem = entry.path.name[: -len(cachefiles.RAW)]
        own = sorted(p for p in directory.iterdir() if cachefiles.entry_stem(p.name) == stem)
        files = [p for p in own if not p.name.endswith(cachefiles.LOCK)]
        locks = [cachefiles.entry_lock(directory, stem)]
        locks += [p for p in own if p.name.endswith(cachefiles.LOCK) and p not in locks]
        locks += [cachefiles.lock_of_partial(p) for p in files if cachefiles.is_partial(p.name)]
        _remove_unless_locked(files, list(dict.fromkeys(locks)), result, dry_run)
    seen = set(result.removed) | set(result.skipped)
    for pattern in _PARTIAL_GLOBS:
        for path in sorted(directory.glob(pattern)):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            locks = []
            owner = cachefiles.entry_stem(path.name)
            if owner is not None:
                locks.append(cachefiles.entry_lock(directory, owner))
            if cachefiles.is_partial(path.name):
                locks.append(cachefiles.lock_of_partial(path))
            _remove_unless_locked([path], locks, result, dry_run, keep_locks=True)
    return result


def _remove_unless_locked(
    files: List[Path],
    locks: List[Path],
    result: PruneResult,
    dry_run: bool,
    *,
    keep_locks: bool = False,
) -> None:
    held: List[FileLock] = []
    try:
        for path in locks:
            lock = FileLock(path)
            # Create only entry locks (as ensure would); a download's lock file is fetch's.
            entry_lock = path.name.endswith(cachefiles.RAW + cachefiles.LOCK)
            if not lock.try_acquire(create=not dry_run and entry_lock):
                result.skipped.extend(files)
                return
            held.append(lock)
        for path in files:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            size = getattr(st, "st_blocks", 0) * 512 or st.st_size
            if not dry_run:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
            result.removed.append(path)
            result.freed += size
        if not dry_run and not keep_locks:
            # The entry is gone for good (its snapshot is unpinned), so its locks may go too.
            for path in locks:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
    finally:
        for lock in held:
            lock.release()
