"""Where the cache lives: ``$PYIMAGECACHE_CACHE_DIR``, else the platform's cache directory.

What the files in it are called is :mod:`pyimagecache.cachefiles`'s business.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Union

from .settings import environ


def default_cache_dir() -> Path:
    """``$PYIMAGECACHE_CACHE_DIR``, else the platform cache directory + ``pyimagecache``:
    ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS."""
    env = environ("PYIMAGECACHE_CACHE_DIR")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "pyimagecache"


def resolve_cache_dir(cache_dir: Union[str, os.PathLike[str], None]) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()
