"""What is in a cache directory, and clearing out what the catalog no longer pins.

Listing shows the raw disks, the sources kept beside them, the partial downloads and the
temporaries of killed writers, with totals. Pruning never removes a file that a live process
is working on: it first takes the entry's lock (and the download's, for partials) without
waiting, and skips the file when that fails; lock files nobody holds go too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from . import cachefiles
from ._lock import FileLock, in_use
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
                allocated=_allocated(st),
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


@dataclass(frozen=True)
class CacheFile:
    """A file of the cache that is not a raw disk: a kept source (``kind`` "source"), a
    partial download ("partial": ``url`` and ``total`` from its ``.part.meta`` when it has
    one, ``in_use`` while a download holds its lock, ``resumable`` when the next download
    continues from it) or a killed writer's temporary
    ("temporary"). ``stem`` names the entry it belongs to."""

    path: Path
    kind: str
    apparent: int
    allocated: int
    stem: Optional[str]
    url: Optional[str] = None
    total: Optional[int] = None
    in_use: bool = False
    resumable: bool = False  # a partial the next download continues from


@dataclass(frozen=True)
class Inventory:
    """Everything :func:`inventory` found in a cache directory."""

    entries: List[Entry]
    files: List[CacheFile]  # sources, partials, temporaries, by name

    def of_kind(self, kind: str) -> List[CacheFile]:
        return [f for f in self.files if f.kind == kind]

    def totals(self) -> Dict[str, Any]:
        """Count and bytes per group (``entries``, ``sources``, ``partials``,
        ``temporaries``), and the allocated bytes of them all.

        >>> Inventory([], []).totals()["partials"]
        {'count': 0, 'apparent_size': 0, 'allocated_size': 0}
        """
        groups: Dict[str, Any] = {
            "entries": _total((e.apparent, e.allocated) for e in self.entries)
        }
        for kind, group in FILE_KINDS.items():
            groups[group] = _total((f.apparent, f.allocated) for f in self.of_kind(kind))
        groups["allocated_size"] = sum(g["allocated_size"] for g in groups.values())
        return groups


#: The kinds of :class:`CacheFile`, in the order listings show them, and their group's name.
FILE_KINDS = {"source": "sources", "partial": "partials", "temporary": "temporaries"}


def _total(sizes: Any) -> Dict[str, int]:
    count = apparent = allocated = 0
    for a, b in sizes:
        count, apparent, allocated = count + 1, apparent + a, allocated + b
    return {"count": count, "apparent_size": apparent, "allocated_size": allocated}


def _allocated(st: os.stat_result) -> int:
    return getattr(st, "st_blocks", 0) * 512 or st.st_size


def _kind(name: str) -> Optional[str]:
    """What a file of the cache is, by its name; None for disks, sidecars, locks, partial
    metadata and foreign files."""
    if cachefiles.entry_stem(name) is None:
        return None
    if name.startswith("."):
        return "temporary"
    if name.endswith((cachefiles.PART, cachefiles.LAYER)):
        return "partial"
    if name.endswith((cachefiles.RAW, cachefiles.RAW + cachefiles.SIDECAR, cachefiles.LOCK)):
        return None
    if name.endswith(cachefiles.PART_META):
        return None
    return "source"


def inventory(directory: Path, entries: Mapping[str, ImageInfo]) -> Inventory:
    """The raw disks of ``directory`` (:func:`list_entries`) and every other file of the
    cache that takes room: kept sources, partial downloads, temporaries."""
    from .download import partial

    directory = Path(directory)
    found: List[CacheFile] = []
    for path in sorted(directory.iterdir()):
        kind = _kind(path.name)
        if kind is None:
            continue
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not path.is_file():
            continue
        url = total = None
        busy = resumes = False
        if kind == "partial":
            meta = path.with_name(path.name + ".meta")
            validators = partial.load(meta) if path.name.endswith(cachefiles.PART) else None
            if validators is not None:
                url, total = validators.url, validators.total
                resumes = partial.resumable(path, meta)
            busy = in_use(cachefiles.lock_of_partial(path))
        found.append(
            CacheFile(
                path=path,
                kind=kind,
                apparent=st.st_size,
                allocated=_allocated(st),
                stem=cachefiles.entry_stem(path.name),
                url=url,
                total=total,
                in_use=busy,
                resumable=resumes,
            )
        )
    return Inventory(list_entries(directory, entries), found)


@dataclass
class PruneResult:
    removed: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)  # in use by a live process
    freed: int = 0


def prune(
    directory: Path, entries: Mapping[str, ImageInfo], *, dry_run: bool = False
) -> PruneResult:
    """Remove entries whose snapshot the catalog no longer pins (raw, sidecar, sources, lock),
    stale partials (``*.part``, ``*.part.meta``, hidden temporaries of killed writers) and
    lock files nobody holds."""
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
            _remove_unless_locked([path], locks, result, dry_run)
    for path in sorted(directory.glob("*" + cachefiles.LOCK)):
        # Lock files nobody holds: a holder removes its own, a killed one cannot.
        if path in result.removed or cachefiles.entry_stem(path.name) is None:
            continue
        if not path.is_file():
            continue
        if dry_run:
            if not in_use(path):
                result.removed.append(path)
            continue
        lock = FileLock(path)
        try:
            taken = lock.try_acquire(create=False)
        except OSError:  # another user's lock file, which we may not open for writing
            continue
        if taken:
            lock.release()  # removes it
            result.removed.append(path)
    return result


def _remove_unless_locked(
    files: List[Path], locks: List[Path], result: PruneResult, dry_run: bool
) -> None:
    """Remove ``files`` unless one of ``locks`` is held; the locks that existed go too (taking
    a lock creates its file and letting go removes it, see _lock). A dry run only looks."""
    held: List[FileLock] = []
    existed = [p for p in locks if p.exists()]
    try:
        for path in locks:
            if dry_run:
                busy = in_use(path)
            else:
                lock = FileLock(path)
                busy = not lock.try_acquire()
                if not busy:
                    held.append(lock)
            if busy:
                result.skipped.extend(files)
                return
        for path in files:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if not dry_run:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
            result.removed.append(path)
            result.freed += _allocated(st)
        result.removed.extend(p for p in existed if p not in result.removed)
    finally:
        for lock in held:
            lock.release()
