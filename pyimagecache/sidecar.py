"""The sidecar ``<raw>.json`` beside each cached disk: where it came from and how it was checked.

``ensure`` writes it, durably, right before publishing the disk (so a cached disk always has
its record): where it came from, which digests it was verified against, and what was
published (size, modification time, content digest), which a hit and ``cache verify`` check
the disk against. ``cache list`` and ``prune`` read it. A missing or unreadable sidecar reads
as empty.
"""

from __future__ import annotations

import os
import time

from .cachefiles import SIDECAR

# A cache hit reads a sidecar: neither json nor typing nor pathlib at run time (see _jsonfast).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Dict, Mapping, Union

    PathLike = Union[str, "os.PathLike[str]"]

#: The fields ensure records (unknown ones from newer versions are kept when reading).
FIELDS = (
    "url",
    "sha256",
    "sha512",
    "verified",
    "alias",
    "snapshot",
    "arch",
    "source_format",
    "size",
    "mtime_ns",
    "content",
    "oci_digest",
    "created",
    "fallback_from",
)


def sidecar_path(raw: Path) -> Path:
    return raw.with_name(raw.name + SIDECAR)


def read_sidecar(raw: PathLike) -> Dict[str, Any]:
    """The sidecar of ``raw`` as a dict; empty when missing or unreadable."""
    from ._jsonfast import loads

    try:
        with open(os.fspath(raw) + SIDECAR, "rb") as f:
            data = loads(f.read().decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return {}
    return data if isinstance(data, dict) else {}


def write_sidecar(raw: Path, record: Mapping[str, Any]) -> None:
    """Publish the sidecar of ``raw`` atomically and durably; ``created`` is set to now (UTC)
    unless the record carries one (an existing record, updated)."""
    data = {k: record[k] for k in FIELDS if k in record and record[k] is not None}
    data.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    import json

    from ._atomic import atomic_output

    with atomic_output(sidecar_path(raw)) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def changed_since_published(st: os.stat_result, record: Mapping[str, Any]) -> str:
    """What differs between a raw's stat and the size and modification time its sidecar
    recorded when it was published ("" for nothing, or an entry recorded by a pyimagecache
    that did not record them: ``cache verify`` reports those)."""
    if not record:
        return "it has no sidecar record"
    size, mtime = record.get("size"), record.get("mtime_ns")
    if not isinstance(size, int) or not isinstance(mtime, int):
        return ""
    changes = []
    if st.st_size != size:
        changes.append(f"size {size} -> {st.st_size} bytes")
    if st.st_mtime_ns != mtime:
        changes.append(f"modified at {_when(st.st_mtime_ns)}, published at {_when(mtime)}")
    return ", ".join(changes)


def _when(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))
