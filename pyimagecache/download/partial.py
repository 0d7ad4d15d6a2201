"""What a partial download is a prefix of: the validators sidecar ``<dest>.part.meta``.

A resume is only safe when the server can tell us the bytes we hold are still a prefix of what it
serves now. The first response's strong ETag (or, failing that, Last-Modified), total length and
the requested URL are stored beside the partial; the next attempt sends them in If-Range and the
server answers 206 only if nothing changed. Weak ETags never qualify (RFC 9110 13.1.5).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, NamedTuple, Optional

from .._atomic import atomic_output


class Validators(NamedTuple):
    """Identity of the resource a partial file belongs to."""

    url: str  # as the caller asked for it, before redirects
    etag: Optional[str]  # strong ETags only
    last_modified: Optional[str]
    total: Optional[int]  # full length in bytes, None when the server did not say

    @property
    def if_range(self) -> Optional[str]:
        """The If-Range value, None when no validator is good enough to resume with."""
        return self.etag or self.last_modified

    @classmethod
    def from_headers(cls, url: str, headers: Mapping[str, str], total: Optional[int]) -> Validators:
        etag = headers.get("ETag")
        if etag is not None:
            etag = etag.strip()
            # A weak or malformed ETag cannot be used in If-Range.
            if not (len(etag) >= 2 and etag.startswith('"') and etag.endswith('"')):
                etag = None
        return cls(url, etag, headers.get("Last-Modified") or None, total)

    def consistent_with(self, later: Validators) -> bool:
        """False when ``later`` (from a 206 answering our If-Range) contradicts ``self``: another
        URL or total, or a validator it repeats with a different value."""
        if self.url != later.url or self.total != later.total:
            return False
        if self.etag and later.etag and self.etag != later.etag:
            return False
        return not (
            self.last_modified and later.last_modified and self.last_modified != later.last_modified
        )


def load(meta: Path) -> Optional[Validators]:
    """The stored validators, or None when missing, unreadable or malformed (start over)."""
    try:
        record: Dict[str, Any] = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    url, etag, modified, total = (record.get(k) for k in ("url", "etag", "last_modified", "total"))
    if not isinstance(url, str):
        return None
    if etag is not None and not isinstance(etag, str):
        return None
    if modified is not None and not isinstance(modified, str):
        return None
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        return None
    return Validators(url, etag, modified, total)


def save(meta: Path, validators: Validators) -> None:
    """Write the sidecar atomically, so a kill leaves the old one or the new one."""
    data = json.dumps(validators._asdict(), sort_keys=True).encode()
    with atomic_output(meta) as tmp:
        tmp.write_bytes(data)


def discard(meta: Path) -> None:
    try:
        os.unlink(meta)
    except FileNotFoundError:
        pass


def resumable(part: Path, meta: Path) -> bool:
    """Whether a download continues from the partial file ``part`` (validators in ``meta``):
    it holds bytes, no more than the total, and the server gave a validator to resume with
    (a strong ETag or Last-Modified); otherwise the next download starts over."""
    try:
        size = os.stat(part).st_size
    except OSError:
        return False
    validators = load(meta)
    if size == 0 or validators is None or validators.if_range is None:
        return False
    return validators.total is None or size <= validators.total
