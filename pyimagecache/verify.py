"""``cache verify``: re-read every cached raw disk and compare it with its sidecar's record.

A hit compares only the size and modification time the sidecar recorded when the raw was
published (one stat); this reads the whole raw (its data, not its holes) and recomputes the
content digest (:mod:`pyimagecache.contentdigest`), so a change whose modification time was set
back shows too. ``repair`` rebuilds what changed from the kept source or the network, verified
against the digests the entry was first verified against, so it restores exactly what was
cached or fails saying why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional

from ._lock import FileLock
from .cachefiles import LOCK, RAW
from .sidecar import changed_since_published, read_sidecar, write_sidecar

#: A raw that matches its record.
OK = "ok"
#: A raw whose content differs from its record.
CHANGED = "changed"
#: A raw without a content record (no sidecar, or cached by an older pyimagecache).
UNRECORDED = "unrecorded"
#: A raw another process holds the lock of (being built); not read.
BUSY = "busy"


class Finding(NamedTuple):
    """What ``cache verify`` found for one raw: its ``state`` and, when it is not plainly
    ``ok``, a ``detail`` saying what differs."""

    raw: Path
    state: str
    detail: str = ""


def cached_raws(directory: Path) -> List[Path]:
    """The published raw disks of a cache directory (never a temporary)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*" + RAW) if not p.name.startswith("."))


def verify_entry(raw: Path) -> Finding:
    """Re-read ``raw`` and compare it with its record, under the entry's lock (not waiting:
    an entry being built is reported ``busy``).

    >>> verify_entry(Path("debian-12-20260712-2537-amd64.raw"))  # doctest: +SKIP
    Finding(raw=PosixPath('...'), state='ok', detail='')
    """
    lock = FileLock(raw.with_name(raw.name + LOCK))
    if not lock.try_acquire():
        return Finding(raw, BUSY, "another process holds its lock (building it?)")
    try:
        return _verify_locked(raw)
    finally:
        lock.release()


def _verify_locked(raw: Path) -> Finding:
    from .contentdigest import file_content_digest

    record = read_sidecar(raw)
    recorded = record.get("content")
    if not record:
        return Finding(raw, UNRECORDED, "it has no sidecar record")
    if not isinstance(recorded, str):
        return Finding(raw, UNRECORDED, "its sidecar has no content digest (an older pyimagecache)")
    st = os.stat(raw)
    actual = file_content_digest(raw)
    change = changed_since_published(st, record)
    if actual != recorded:
        also = (
            f"; also {change}"
            if change
            else "; its size and modification time are as published (set back?)"
        )
        return Finding(raw, CHANGED, f"content {actual} instead of {recorded}{also}")
    if change:
        return Finding(raw, OK, f"content as published; {change}")
    return Finding(raw, OK)


def verify_cache(
    directory: Path, report: Optional[Callable[[Finding], None]] = None
) -> List[Finding]:
    """:func:`verify_entry` for every raw in ``directory``, in name order; ``report`` is
    called with each finding as it is made."""
    findings = []
    for raw in cached_raws(directory):
        finding = verify_entry(raw)
        findings.append(finding)
        if report is not None:
            report(finding)
    return findings


def record_mtime(raw: Path) -> None:
    """Record ``raw``'s current size and modification time in its sidecar: after its content
    was found as published (a cache copied with its times lost)."""
    record = read_sidecar(raw)
    st = os.stat(raw)
    write_sidecar(raw, {**record, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def repair(finding: Finding, settings: object, progress_for: object = None) -> Path:
    """Make ``finding``'s entry match its record again: rebuild a changed or unrecorded raw
    (from the kept source or the network, verified against the recorded digests); refresh
    the recorded modification time of a raw whose content is as published."""
    if finding.state == OK:
        if finding.detail:
            record_mtime(finding.raw)
        return finding.raw
    from .cache import rebuild_entry

    return rebuild_entry(finding.raw, settings, progress_for, reason=finding.detail)
