"""The environment variables pyimagecache reads, read here and nowhere else.

Light on purpose (a cache hit reads ``PYIMAGECACHE_CACHE_DIR`` and ``PYIMAGECACHE_CATALOG``
through it): :mod:`pyimagecache.settings` turns the rest into a ``Settings``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Optional

#: Every environment variable pyimagecache reads (README's table lists the same).
ENVIRONMENT = {
    "PYIMAGECACHE_CACHE_DIR": "the cache directory",
    "PYIMAGECACHE_CATALOG": "a catalog JSON file replacing the embedded one",
    "PYIMAGECACHE_MIRRORS": "space-separated mirror bases tried before upstream",
    "PYIMAGECACHE_OFFLINE": "1: never contact upstream (mirrors only)",
    "PYIMAGECACHE_STRICT": "1: refuse instead of falling back when a pin aged out",
    "PYIMAGECACHE_KEYRING": "OpenPGP keyring replacing the shipped keys for upstream signatures",
    "PYIMAGECACHE_NO_VERIFY_SIGNATURES": "1: do not check upstream checksum files' signatures",
    "PYIMAGECACHE_REQUIRE_SIGNATURES": "1: refuse families that publish no signature",
    "PYIMAGECACHE_INSECURE_REGISTRIES": "host:port registries that may be reached over http",
    "PYIMAGECACHE_INFLATE": "zlib: use the standard library's zlib even with zlib-ng installed",
}


def environ(name: str, env: Optional[Mapping[str, str]] = None) -> str:
    """The value of one of :data:`ENVIRONMENT`'s variables, stripped ('' when unset)."""
    assert name in ENVIRONMENT, name
    return (os.environ if env is None else env).get(name, "").strip()
