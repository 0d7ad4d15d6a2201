"""What a resolver produces, and the newest-complete-snapshot walk both distros share.

The walk never moves a pin backwards: it stops at the pinned snapshot (or anything older) and
keeps the pin, so a pruned or half-uploaded upstream can only delay a bump, never undo one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Union

from ..errors import RefreshError
from .snapshots import SnapshotKey

#: How many snapshots to try, newest first, before giving up on an alias.
MAX_CANDIDATES = 5


@dataclass(frozen=True)
class ArchPin:
    url: str
    sha256: str


@dataclass(frozen=True)
class Pin:
    """A resolved snapshot with its per-arch URL and SHA-256."""

    snapshot: str
    arch: Dict[str, ArchPin]


def pinned_arches(entry: Mapping[str, object]) -> List[str]:
    """The arches an alias lists (a new snapshot must have them all), else amd64 and arm64."""
    arch = entry.get("arch")
    return list(arch) if isinstance(arch, dict) and arch else ["amd64", "arm64"]


#: Tries one snapshot: its Pin, or a reason why it is incomplete.
TrySnapshot = Callable[[str], Union[Pin, str]]


def walk(
    alias: str,
    candidates: List[str],
    current: Optional[str],
    key: Callable[[str], Optional[SnapshotKey]],
    try_snapshot: TrySnapshot,
    log: Callable[[str], None],
    where: str,
) -> Optional[Pin]:
    """The newest complete snapshot newer than ``current``, or None to keep the current pin.

    ``candidates`` are newest first. An incomplete snapshot is reported as a fallback and the
    next one tried; errors (bad checksum, network, bad signature) propagate.
    """
    current_key = key(current) if current else None
    skipped: List[str] = []
    for name in candidates[:MAX_CANDIDATES]:
        name_key = key(name)
        if current_key is not None and name_key is not None and name_key <= current_key:
            if skipped or name != current:
                log(f"note {alias}: nothing newer than {current} is complete; keeping it")
            return None
        outcome = try_snapshot(name)
        if isinstance(outcome, Pin):
            return outcome
        skipped.append(name)
        log(f"fallback {alias}: {name} is incomplete ({outcome}); trying the next newest")
    if not candidates:
        raise RefreshError(f"{alias}: {where} lists no snapshot directories")
    tried = ", ".join(skipped)
    raise RefreshError(f"{alias}: no complete snapshot in {where} (tried {tried})")
