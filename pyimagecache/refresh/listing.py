"""Read an HTTP server's HTML directory index: which files and subdirectories does it list?

Only links that resolve to direct children of the listed directory count, so Apache's sort
links (``?C=N;O=D``), the parent directory and links to other sites drop out by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import FrozenSet, List, Optional, Set, Tuple
from urllib.parse import unquote, urljoin, urlsplit

from ..errors import RefreshError


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.hrefs.append(value.strip())


@dataclass(frozen=True)
class Listing:
    """The entries of one directory index page."""

    url: str
    dirs: FrozenSet[str]
    files: FrozenSet[str]


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"'")
    return "utf-8"


def parse_listing(body: bytes, url: str, content_type: str = "") -> Listing:
    """Directory and file names linked from the index page ``body`` served at ``url``.

    >>> page = b'<a href="?C=M">Date</a> <a href="20260601-2496/">x</a> <a href="SUMS">y</a>'
    >>> listing = parse_listing(page, "https://example.org/cloud/bookworm/")
    >>> sorted(listing.dirs), sorted(listing.files)
    (['20260601-2496'], ['SUMS'])
    """
    base = url if url.endswith("/") else url + "/"
    try:
        text = body.decode(_charset(content_type), errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    parser = _Anchors()
    try:
        parser.feed(text)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything it still rejects is malformed
        raise RefreshError(f"directory listing {url} is not parseable HTML: {exc}") from None
    if not parser.hrefs:
        raise RefreshError(
            f"directory listing {url} links to nothing: not an HTML index page "
            f"(starts with {body[:40]!r})"
        )
    base_parts = urlsplit(base)
    dirs: Set[str] = set()
    files: Set[str] = set()
    for href in parser.hrefs:
        target = urlsplit(urljoin(base, href))
        if (target.scheme, target.netloc) != (base_parts.scheme, base_parts.netloc):
            continue
        if target.query or not target.path.startswith(base_parts.path):
            continue
        rest = unquote(target.path[len(base_parts.path) :])
        is_dir = rest.endswith("/")
        name = rest[:-1] if is_dir else rest
        if not name or "/" in name or name in (".", ".."):
            continue
        (dirs if is_dir else files).add(name)
    return Listing(url=base, dirs=frozenset(dirs), files=frozenset(files))
