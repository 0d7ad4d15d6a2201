"""Keep the pinned catalog current: ``catalog refresh`` bumps snapshots, ``catalog check``
validates a catalog. Network access goes through :mod:`pyimagecache.download`.

>>> from pyimagecache.refresh import refresh_catalog
>>> refresh_catalog(Path("pyimagecache/catalog.json"), dry_run=True)  # doctest: +SKIP
"""

from __future__ import annotations

from .check import check_document
from .run import RefreshResult, embedded_catalog_path, refresh_catalog

__all__ = ["RefreshResult", "check_document", "embedded_catalog_path", "refresh_catalog"]
