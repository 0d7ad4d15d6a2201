"""What a resolver produces, and the newest-complete-snapshot walk every family shares.

The walk never moves a pin backwards: it stops at the pinned snapshot (or anything older) and
keeps the pin, so a pruned or half-uploaded upstream can only delay a bump, never undo one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Union

from ..errors import RefreshError
from ..hashing import Expected
from .snapshots import SnapshotKey

#: How many incomplete snapshots to try, newest first, before giving up on an alias.
MAX_CANDIDATES = 5


class Skip(str):
    """Why a snapshot is refused rather than merely incomplete (its checksum file's signature
    is missing or bad): the walk says "skipped" and tries the next newest."""


@dataclass(frozen=True)
class ArchPin:
    """One arch's new pin: the image, the digests upstream's checksum file gives for it, the
    snapshot it belongs to, and where the digests came from (a provenance record's facts)."""

    url: str
    expected: Expected
    snapshot: str = ""
    #: The checksum file (or manifest) the digests were read from.
    source: str = ""
    #: Its format (:mod:`.sums`).
    fmt: str = ""
    #: ``verified`` (by ``key``), ``unsigned`` (upstream signs nothing) or ``not-checked``.
    signature: str = "unsigned"
    #: The primary fingerprint of the key whose signature was verified.
    key: str = ""

    @property
    def sha256(self) -> str:
        return self.expected.sha256 or ""

    @property
    def verified(self) -> bool:
        """The checksum file's signature was checked with gpgv and is good."""
        return self.signature == "verified"


@dataclass(frozen=True)
class Pin:
    """A resolved snapshot with its per-arch pins."""

    snapshot: str
    arch: Dict[str, ArchPin]


#: Tries one snapshot: its Pin, or a reason why it is incomplete.
TrySnapshot = Callable[[str], Union[Pin, str]]


def walk(
    alias: str,
    candidates: Iterable[str],
    current: Optional[str],
    key: Callable[[str], Optional[SnapshotKey]],
    try_snapshot: TrySnapshot,
    log: Callable[[str], None],
    where: str,
    *,
    keep_when_exhausted: bool = False,
) -> Optional[Pin]:
    """The newest complete snapshot newer than ``current``, or None to keep the current pin.

    ``candidates`` are newest first. An incomplete snapshot is reported as a fallback (a refused
    one, :class:`Skip`, as skipped) and the next one tried, at most :data:`MAX_CANDIDATES` of
    them; then it is an error, or with ``keep_when_exhausted`` (an arch whose builds lag behind
    the others') the pin is kept.
    Errors (bad checksum file, network, no key for the release) propagate.
    """
    current_key = key(current) if current else None
    skipped: List[str] = []
    reasons: List[str] = []
    seen = 0
    for name in candidates:
        seen += 1
        name_key = key(name)
        if current_key is not None and name_key is not None and name_key <= current_key:
            if skipped or name != current:
                log(f"note {alias}: nothing newer than {current} is complete; keeping it")
            return None
        if len(skipped) >= MAX_CANDIDATES:
            break
        outcome = try_snapshot(name)
        if isinstance(outcome, Pin):
            return outcome
        skipped.append(name)
        reasons.append(
            f"{name} refused ({outcome})" if isinstance(outcome, Skip) else f"{name}: {outcome}"
        )
        if isinstance(outcome, Skip):
            log(f"skipped {alias}: {name} refused ({outcome}); trying the next newest")
        else:
            log(f"fallback {alias}: {name} is incomplete ({outcome}); trying the next newest")
    if not seen:
        raise RefreshError(f"{alias}: {where} lists no snapshot")
    if not skipped:  # every candidate was older than the pin's, or the walk found none newer
        return None
    if keep_when_exhausted and current_key is not None:
        log(f"note {alias}: {len(skipped)} newer snapshots are incomplete; keeping {current}")
        return None
    tried = "; ".join(reasons)
    raise RefreshError(f"{alias}: no complete snapshot in {where} (tried {tried})")
