"""Upstream snapshot directory names and their order.

Debian names its dated builds ``20260601-2496`` (date, build serial); Ubuntu ``release-20260518``
with an optional point re-spin ``release-20260518.1``. Both compare numerically, so
``20260601-10`` is newer than ``20260601-9`` although it sorts lower as a string. Moving pointers
(``latest``, ``daily``, ``current``, ``release``) never match and are thereby ignored.
"""

from __future__ import annotations

import datetime
import re
from typing import Callable, Iterable, List, Optional, Tuple

SnapshotKey = Tuple[int, int, int, int]

_DEBIAN = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{1,9})")
_UBUNTU = re.compile(r"release-(\d{4})(\d{2})(\d{2})(?:\.(\d{1,9}))?")


def _dated(year: str, month: str, day: str, serial: Optional[str]) -> Optional[SnapshotKey]:
    try:
        date = datetime.date(int(year), int(month), int(day))
    except ValueError:
        return None  # 20261399-1 looks like a snapshot but is not one
    return (date.year, date.month, date.day, int(serial or 0))


def debian_key(name: str) -> Optional[SnapshotKey]:
    """Sort key of a Debian snapshot name, or None when ``name`` is not one.

    >>> debian_key("20260601-2496")
    (2026, 6, 1, 2496)
    """
    m = _DEBIAN.fullmatch(name)
    return _dated(*m.groups()) if m else None


def ubuntu_key(name: str) -> Optional[SnapshotKey]:
    """Sort key of an Ubuntu release snapshot name, or None when ``name`` is not one.

    >>> ubuntu_key("release-20260518.1")
    (2026, 5, 18, 1)
    """
    m = _UBUNTU.fullmatch(name)
    return _dated(*m.groups()) if m else None


def newest_first(names: Iterable[str], key: Callable[[str], Optional[SnapshotKey]]) -> List[str]:
    """The names that are snapshots, newest first; everything else is dropped.

    >>> newest_first(["latest", "20260601-9", "20260601-10", "daily"], debian_key)
    ['20260601-10', '20260601-9']
    """
    keyed = [(k, n) for n in set(names) for k in [key(n)] if k is not None]
    return [n for _, n in sorted(keyed, reverse=True)]
