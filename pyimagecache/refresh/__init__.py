"""Keep the pinned catalog current: ``catalog refresh`` bumps snapshots, ``catalog check``
validates a catalog, :func:`newer_pin` finds the newer snapshot of a pin that aged out.
Network access goes through :mod:`pyimagecache.download`.

>>> from pyimagecache.refresh import refresh_catalog
>>> refresh_catalog(Path("pyimagecache/catalog.json"), dry_run=True)  # doctest: +SKIP
"""

from __future__ import annotations

from .check import check_document
from .fallback import FallbackPin, newer_pin
from .run import RefreshResult, embedded_catalog_path, refresh_catalog

__all__ = [
    "FallbackPin",
    "RefreshResult",
    "check_document",
    "embedded_catalog_path",
    "newer_pin",
    "refresh_catalog",
]
