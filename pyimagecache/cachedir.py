"""Where the cache lives: ``$PYIMAGECACHE_CACHE_DIR``, else the platform's cache directory.

What the files in it are called is :mod:`pyimagecache.cachefiles`'s business. A cache hit
reads this, so it works on strings and imports no more than :mod:`os`.
"""

from __future__ import annotations

import os
import sys

from .environment import environ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Union


def cache_dir_path(cache_dir: Union[str, os.PathLike[str], None] = None) -> str:
    """``cache_dir``, else ``$PYIMAGECACHE_CACHE_DIR``, else the platform cache directory +
    ``pyimagecache``: ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on
    macOS.

    >>> cache_dir_path("/var/cache/vm")
    '/var/cache/vm'
    """
    if cache_dir is not None:
        path = os.fspath(cache_dir)
        if not path:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(
                "cache_dir is empty: give a directory, or None for the default"
            )
        return path
    env = environ("PYIMAGECACHE_CACHE_DIR")
    if env:
        return env
    home = os.path.expanduser("~")
    if sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says a relative value is invalid and must be ignored.
        base = xdg if xdg and os.path.isabs(xdg) else os.path.join(home, ".cache")
    return os.path.join(base, "pyimagecache")


def default_cache_dir() -> Path:
    """:func:`cache_dir_path` with no directory given, as a Path."""
    from pathlib import Path

    return Path(cache_dir_path())


def resolve_cache_dir(cache_dir: Union[str, os.PathLike[str], None]) -> Path:
    from pathlib import Path

    return Path(cache_dir_path(cache_dir))
