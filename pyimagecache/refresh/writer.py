"""Read and write the catalog JSON document itself, keeping what humans wrote.

Keys keep their order (dicts do), duplicate keys are an error rather than a silent last-wins,
and the output is 2-space JSON with a trailing newline, published atomically with the old
file's permissions. An unchanged document is not written at all, so the file stays
byte-identical (and its mtime untouched).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Tuple

from .._atomic import atomic_output
from ..errors import CatalogError, RefreshError


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise CatalogError(f"duplicate key {key!r}")
        out[key] = value
    return out


def decode_document(raw: bytes, where: str) -> Any:
    """The decoded catalog JSON; CatalogError names ``where`` and what is wrong."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise CatalogError(f"catalog {where}: not UTF-8 (byte {exc.start})") from None
    except CatalogError as exc:
        raise CatalogError(f"catalog {where}: {exc}") from None
    except ValueError as exc:
        raise CatalogError(f"catalog {where}: not valid JSON: {exc}") from None


def read_document(path: Path) -> Tuple[bytes, Any]:
    """(the file's bytes, the decoded document)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read: {exc.strerror or exc}") from None
    return raw, decode_document(raw, str(path))


def encode_document(doc: Any) -> bytes:
    """>>> encode_document({"a": {"b": 1}})
    b'{\\n  "a": {\\n    "b": 1\\n  }\\n}\\n'
    """
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


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
