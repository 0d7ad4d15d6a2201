"""Resumable, verified downloads over http(s), file:// and local paths.

>>> from pyimagecache.download import fetch
>>> fetch("https://example.org/disk.qcow2", "disk.qcow2", sha256="ab12...")  # doctest: +SKIP

urllib3 is imported only when an http(s) URL is actually fetched.
"""

from __future__ import annotations

from .in_memory import Fetched, hash_url, read_url
from .to_file import fetch

__all__ = ["Fetched", "fetch", "hash_url", "read_url"]
