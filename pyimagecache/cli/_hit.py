"""``pyimagecache ensure ALIAS`` answered before argparse, when the cache has the disk.

argparse alone takes longer to import than a whole cache hit, and a hit is what a CI fleet or
an installer runs most. Only the plainest command lines are recognised here: an alias, and
``--cache-dir D``, ``--arch A`` (as ``--opt value`` or ``--opt=value``), ``-q``/``--quiet``,
``--debug``. Anything else (a URL, a digest, ``--json``, an abbreviation, a repeated option,
any other word) is None, and argparse parses the whole command line as always, so every
usage error and every other case is exactly what it was. The hit itself is
:func:`pyimagecache.hit.find_hit`, the library's decision.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional

#: Options that take a value, and the keyword they are.
_VALUED = {"--cache-dir": "cache_dir", "--arch": "arch"}
#: Options without a value that change nothing about a hit.
_FLAGS = ("-q", "--quiet", "--debug")


def ensure_hit(words: List[str]) -> Optional[str]:
    """The raw disk's path when ``pyimagecache ensure <words>`` is a plain cache hit, else
    None (then argparse and the library take the whole command line).

    >>> ensure_hit(["debian-12", "--sha256", "ab" * 32]) is None  # a digest: the full path
    True
    """
    image: Optional[str] = None
    values: Dict[str, str] = {}
    at = 0
    while at < len(words):
        word = words[at]
        at += 1
        if word in _FLAGS:
            continue
        name, equals, value = word.partition("=")
        if name in _VALUED:
            if not equals:
                if at >= len(words):
                    return None
                value, at = words[at], at + 1
            if not value or value.startswith("-") or _VALUED[name] in values:
                return None  # argparse says what is wrong with it
            values[_VALUED[name]] = value
            continue
        if word.startswith("-") or image is not None:
            return None
        image = word
    if not image or "://" in image:
        return None  # an alias only: URLs and references take the full path
    from ..hit import find_hit

    return find_hit(image, values.get("cache_dir"), values.get("arch"))
