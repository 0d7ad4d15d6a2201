"""The sidecar ``<raw>.json`` beside each cached disk: where it came from and how it was checked.

``ensure`` writes it, durably, right after publishing the disk; ``cache list`` and ``prune`` read
it. A missing or unreadable sidecar reads as empty: the disk itself is still complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Mapping

from ._atomic import atomic_output
from .cachefiles import SIDECAR

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
    "created",
    "fallback_from",
)


def sidecar_path(raw: Path) -> Path:
    return raw.with_name(raw.name + SIDECAR)


def read_sidecar(raw: Path) -> Dict[str, Any]:
    """The sidecar of ``raw`` as a dict; empty when missing or unreadable."""
    try:
        data = json.loads(sidecar_path(raw).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_sidecar(raw: Path, record: Mapping[str, Any]) -> None:
    """Publish the sidecar of ``raw`` atomically and durably; ``created`` is set to now (UTC)."""
    data = {k: record[k] for k in FIELDS if k in record and record[k] is not None}
    data["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with atomic_output(sidecar_path(raw)) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
