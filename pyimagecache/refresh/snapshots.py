"""Upstream snapshot names, one naming rule per family, and their numeric order.

A snapshot id is whatever upstream puts into its directory or file names: Debian's dated builds
``20260601-2496``, Ubuntu's ``release-20260518`` (re-spun ``release-20260518.1``), Fedora's
compose ``44-1.7``, openSUSE's ``Build18.71``, Oracle Linux's ``OL9U8-b293``... Each compares
as a tuple of numbers, never as a string: ``20260601-10`` is newer than ``20260601-9`` and
``Build18.71`` than ``Build18.7``. Moving pointers (``latest``, ``current``, ``release``...)
match no rule and are thereby ignored.
"""

from __future__ import annotations

import datetime
import re
from typing import Callable, Iterable, List, Optional, Tuple

SnapshotKey = Tuple[int, ...]


class SnapshotRule:
    """One family's snapshot names: a regular expression whose groups are all numbers (an
    absent optional group counts as 0). Groups named ``year``, ``month`` and ``day`` must
    form a real date, so ``20261399-1`` is not a snapshot.

    >>> SnapshotRule(r"Build(\\d+)\\.(\\d+)", "Build<n>.<m>")("Build18.71")
    (18, 71)
    """

    def __init__(self, pattern: str, shape: str) -> None:
        self.pattern = re.compile(pattern)
        #: How the names look, for messages: ``YYYYMMDD-N``.
        self.shape = shape

    def __call__(self, name: str) -> Optional[SnapshotKey]:
        m = self.pattern.fullmatch(name)
        if m is None:
            return None
        dated = m.groupdict()
        if "year" in dated:
            try:
                datetime.date(int(dated["year"]), int(dated["month"]), int(dated["day"]))
            except ValueError:
                return None
        return tuple(int(g or 0) for g in m.groups())

    def __repr__(self) -> str:
        return f"SnapshotRule({self.shape!r})"


_DATE = r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})"
_N = r"\d{1,9}"

DEBIAN = SnapshotRule(rf"{_DATE}-({_N})", "YYYYMMDD-N")
UBUNTU = SnapshotRule(rf"release-{_DATE}(?:\.({_N}))?", "release-YYYYMMDD[.N]")
#: ``<release>-<compose>``: ``44-1.7`` for the primary arches, ``44-20260604.0`` for riscv64.
FEDORA = SnapshotRule(rf"(\d{{1,4}})-({_N})\.({_N})", "<release>-<compose>, e.g. 44-1.7")
CENTOS_STREAM = SnapshotRule(rf"{_DATE}\.({_N})", "YYYYMMDD.N")
ALMALINUX = SnapshotRule(rf"(\d{{1,3}})\.(\d{{1,3}})-{_DATE}(?:\.({_N}))?", "<M.m>-YYYYMMDD[.N]")
ROCKY = SnapshotRule(rf"(\d{{1,3}})\.(\d{{1,3}})-{_DATE}\.({_N})", "<M.m>-YYYYMMDD.N")
ORACLELINUX = SnapshotRule(rf"OL(\d{{1,3}})U(\d{{1,3}})-b({_N})", "OL<M>U<m>-b<build>")
OPENSUSE_LEAP = SnapshotRule(rf"Build({_N})\.({_N})", "Build<n>.<m>")
ALPINE = SnapshotRule(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})-r(\d{1,9})", "<X.Y.Z>-r<rev>")
ARCHLINUX = SnapshotRule(rf"{_DATE}\.(\d{{1,12}})", "YYYYMMDD.<job id>")
AMAZONLINUX = SnapshotRule(rf"(\d{{4}})\.(\d{{1,3}})\.{_DATE}\.({_N})", "2023.<minor>.YYYYMMDD.N")
FREEBSD = SnapshotRule(r"(\d{1,3})\.(\d{1,3})-RELEASE", "<X.Y>-RELEASE")
ALMALINUX_KITTEN = SnapshotRule(rf"{_DATE}\.({_N})", "YYYYMMDD.N")
CIRROS = SnapshotRule(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})", "<X.Y.Z>")
#: Tumbleweed's snapshot date, as its image names spell it after ``Snapshot``.
OPENSUSE_TUMBLEWEED = SnapshotRule(_DATE, "YYYYMMDD")


#: The older names of Debian's and Ubuntu's rules: ``debian_key("20260601-2496")`` is
#: ``(2026, 6, 1, 2496)``, ``ubuntu_key("release-20260518.1")`` ``(2026, 5, 18, 1)``.
debian_key, ubuntu_key = DEBIAN, UBUNTU


def newest_first(names: Iterable[str], key: Callable[[str], Optional[SnapshotKey]]) -> List[str]:
    """The names that are snapshots, newest first; everything else is dropped.

    >>> newest_first(["latest", "20260601-9", "20260601-10", "daily"], debian_key)
    ['20260601-10', '20260601-9']
    """
    keyed = [(k, n) for n in set(names) for k in [key(n)] if k is not None]
    return [n for _, n in sorted(keyed, reverse=True)]
