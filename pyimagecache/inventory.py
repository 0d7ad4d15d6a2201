"""What is in a cache directory, and clearing out what the catalog no longer pins.

Pruning never removes a file that a live process is working on: it first takes the entry's lock
(and the download's, for partials) without waiting, and skips the file when that fails.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from ._atomic import STALE_GLOB
from .cache import read_sidecar
from .cachedir import URL_HASH_LEN, entry_stem
from .catalog import ARCHES, ImageInfo, cache_stem

_URL_STEM = re.compile(rf"-[0-9a-f]{{{URL_HASH_LEN}}}$")
_PARTIAL_GLOBS = ("*.part", "*.part.meta", STALE_GLOB)


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


def _pinned_stems(entries: Mapping[str, ImageInfo]) -> Dict[str, Tuple[str, str, str]]:
    return {
        cache_stem(alias, info.snapshot, arch): (alias, info.snapshot, arch)
        for alias, info in entries.items()
        for arch in info.arch
    }


def _describe(stem: str, sidecar: Dict[str, object], pinned: Dict[str, Tuple[str, str, str]],
              entries: Mapping[str, ImageInfo]
              ) -> Tuple[Optional[str], Optional[str], Optional[str], Optional[bool]]:
    if stem in pinned:
        p_alias, p_snapshot, p_arch = pinned[stem]
        return p_alias, p_snapshot, p_arch, True
    alias, snapshot, arch = (sidecar.get(k) for k in ("alias", "snapshot", "arch"))
    if isinstance(alias, str):
        return (alias, snapshot if isinstance(snapshot, str) else None,
                arch if isinstance(arch, str) else None, False)
    if sidecar.get("url") is not None or _URL_STEM.search(stem):
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
    for raw in sorted(Path(directory).glob("*.raw")):
        try:
            st = raw.stat()
        except FileNotFoundError:
            continue  # pruned or replaced while we looked
        sidecar = read_sidecar(raw)
        alias, snapshot, arch, is_pinned = _describe(raw.name[:-4], sidecar, pinned, entries)
        url, created = sidecar.get("url"), sidecar.get("created")
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
        stem = entry.path.name[:-4]
        own = sorted(p for p in directory.iterdir() if _belongs(p.name, stem))
        files = [p for p in own if not p.name.endswith(".lock")]
        locks = [directory / (entry.path.name + ".lock")]
        locks += [p for p in own if p.name.endswith(".lock") and p not in locks]
        locks += [p.with_name(p.name + ".lock") for p in files if p.name.endswith(".part")]
        _remove_unless_locked(files, list(dict.fromkeys(locks)), result, dry_run)
    seen = set(result.removed) | set(result.skipped)
    for pattern in _PARTIAL_GLOBS:
        for path in sorted(directory.glob(pattern)):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            locks = []
            name = path.name
            if name.startswith("."):
                name = name[1:].rpartition(".tmp-")[0]
            owner = entry_stem(name)
            if owner is not None:
                locks.append(directory / (owner + ".raw.lock"))
            for suffix in (".part", ".part.meta"):
                if path.name.endswith(suffix):
                    locks.append(path.with_name(path.name[: -len(suffix)] + ".part.lock"))
            _remove_unless_locked([path], locks, result, dry_run, keep_locks=True)
    return result


def _belongs(name: str, stem: str) -> bool:
    if name.startswith("."):
        name = name[1:].rpartition(".tmp-")[0]
    return entry_stem(name) == stem


def _remove_unless_locked(files: List[Path], locks: List[Path], result: PruneResult,
                          dry_run: bool, *, keep_locks: bool = False) -> None:
    held: List[int] = []
    try:
        for lock in locks:
            # Create only entry locks (as ensure would); a download's lock file is fetch's.
            fd = _try_lock(lock, create=not dry_run and lock.name.endswith(".raw.lock"))
            if fd is None:
                result.skipped.extend(files)
                return
            if fd >= 0:
                held.append(fd)
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
            for lock in locks:
                try:
                    lock.unlink()
                except FileNotFoundError:
                    pass
    finally:
        for fd in held:
            _unlock(fd)


def _try_lock(path: Path, *, create: bool) -> Optional[int]:
    """An fd holding ``path``'s lock, -1 when there is no lock file (nobody holds it), or
    None when a live process holds it."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        return -1
    try:
        if not _lock_nb(fd):
            os.close(fd)
            return None
    except BaseException:
        os.close(fd)
        raise
    return fd


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_nb(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)

else:
    import fcntl

    def _lock_nb(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

