"""The catalog as a file: the embedded one's bytes, a document decoded, and the one thing a
cache hit needs from it (which snapshot an alias pins for an arch).

Light on purpose: a cache hit reads the embedded catalog through this module without
importing :mod:`pyimagecache.catalog`, whose parsed, validated entries (dataclasses, regular
expressions) cost more than the hit. The embedded catalog is validated by the test suite;
anything unexpected here simply means "not a hit", and the full path decides.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

EMBEDDED = "catalog.json"


def embedded_catalog_bytes() -> bytes:
    """The embedded catalog.json: beside this module, or through importlib.resources when the
    package is not plain files (a zip)."""
    try:
        with open(os.path.join(os.path.dirname(__file__), EMBEDDED), "rb") as f:
            return f.read()
    except OSError:
        from importlib.resources import files

        return files(__package__ or "pyimagecache").joinpath(EMBEDDED).read_bytes()


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            from .errors import CatalogError

            raise CatalogError(f"duplicate key {key!r}")
        out[key] = value
    return out


def decode_document(raw: bytes, where: str) -> Any:
    """The decoded catalog JSON (keys in file order); duplicate keys are an error rather than
    a silent last-wins. CatalogError names ``where`` and what is wrong.

    >>> decode_document(b'{"a": {}}', "x.json")
    {'a': {}}
    """
    from ._jsonfast import loads
    from .errors import CatalogError

    try:
        return loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise CatalogError(f"catalog {where}: not UTF-8 (byte {exc.start})") from None
    except CatalogError as exc:
        raise CatalogError(f"catalog {where}: {exc}") from None
    except ValueError as exc:
        raise CatalogError(f"catalog {where}: not valid JSON: {exc}") from None


def pinned_snapshot(doc: Any, alias: str, arch: str) -> Optional[str]:
    """The snapshot ``doc`` pins ``alias`` at for ``arch`` (the arch's own, else the
    alias's: :func:`pyimagecache.catalog.snapshot_of`'s rule), or None when the document does
    not pin that plainly (then the caller takes the full path, which says what is wrong).

    >>> doc = {"a": {"snapshot": "1", "arch": {"amd64": {"snapshot": "2"}, "arm64": {}}}}
    >>> pinned_snapshot(doc, "a", "amd64"), pinned_snapshot(doc, "a", "arm64")
    ('2', '1')
    """
    entry = doc.get(alias) if isinstance(doc, dict) else None
    slots = entry.get("arch") if isinstance(entry, dict) else None
    slot = slots.get(arch) if isinstance(slots, dict) else None
    if not isinstance(slot, dict):
        return None
    snapshot = slot.get("snapshot") or entry.get("snapshot")  # type: ignore[union-attr]
    return snapshot if isinstance(snapshot, str) and snapshot else None
