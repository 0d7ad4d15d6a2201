"""Write the refreshed catalog document back, keeping what humans wrote.

Decoding and encoding are :mod:`pyimagecache.catalog`'s (keys keep their order, duplicate keys
are an error, 2-space JSON with a trailing newline); this publishes the new text atomically
with the old file's permissions. An unchanged document is not written at all, so the file stays
byte-identical (and its mtime untouched).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .._atomic import atomic_output
from ..errors import CatalogError, RefreshError


def replace_document(path: Path, expected: bytes, new: bytes) -> None:
    """Atomically replace ``path`` (whose content was ``expected``) by ``new``.

    Refuses when the file changed since it was read (an editor saved meanwhile): clobbering a
    human's edit with a refresh computed from the old text would lose it silently.
    """
    path = Path(path)
    try:
        now = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read: {exc.strerror or exc}") from None
    if now != expected:
        raise RefreshError(f"catalog {path} changed while refreshing; nothing written, run again")
    with atomic_output(path) as tmp:
        tmp.write_bytes(new)
        os.chmod(tmp, mode)
