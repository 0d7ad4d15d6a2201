"""Mirrors: other places that may serve a pinned file, tried before upstream.

A mirror is trusted for nothing: the pinned digest decides whether its bytes are the right
ones. An HTTP(S) or file mirror keeps upstream's host and path under its base (``BASE/HOST/PATH``,
as a caching proxy or ``wget --mirror`` lays it out); an ``oci://REGISTRY/REPO`` mirror is a
registry holding the files as single-blob artifacts, addressed by digest.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence
from urllib.parse import urlsplit

#: Schemes a mirror base may have (``docker://`` is skopeo's spelling of ``oci://``).
MIRROR_SCHEMES = ("http", "https", "file", "oci", "docker")


def check_mirror(base: str) -> str:
    """``base`` without a trailing slash, or ValueError naming what is wrong with it.

    >>> check_mirror("https://mirror.example/cache/")
    'https://mirror.example/cache'
    """
    text = str(base).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in MIRROR_SCHEMES:
        raise ValueError(
            f"mirror {text!r} must start with {', '.join(s + '://' for s in MIRROR_SCHEMES)}"
        )
    if parts.scheme.lower() != "file" and not parts.netloc:
        raise ValueError(f"mirror {text!r} has no host")
    if parts.query or parts.fragment:
        raise ValueError(f"mirror {text!r} must not have a query or fragment")
    return text.rstrip("/")


def mirror_url(base: str, url: str) -> Optional[str]:
    """Where an HTTP(S) or file mirror at ``base`` keeps upstream's ``url``: ``BASE/HOST/PATH``,
    HOST as the URL spells it (with its port, if it has one). None for an OCI base (a registry
    is asked by digest instead) and for a URL that has no host (a file:// pin).

    >>> mirror_url("https://mirror.example/cache", "https://cloud.debian.org:443/images/x.qcow2")
    'https://mirror.example/cache/cloud.debian.org:443/images/x.qcow2'
    """
    scheme = urlsplit(base).scheme.lower()
    parts = urlsplit(url)
    if scheme in ("oci", "docker") or parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc.rpartition("@")[2]  # never carry credentials to a mirror
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{base.rstrip('/')}/{host}{path}"


class Source(NamedTuple):
    """One place to try: a mirror (``mirror`` is its base) or upstream (``mirror`` None).
    ``url`` is None for a registry mirror, which is asked by digest instead."""

    url: Optional[str]
    mirror: Optional[str]

    @property
    def registry(self) -> bool:
        return self.url is None


def is_registry(base: str) -> bool:
    return urlsplit(base).scheme.lower() in ("oci", "docker")


def sources(url: str, mirrors: Sequence[str], *, pinned: bool, offline: bool) -> List[Source]:
    """Where to fetch ``url`` from, in order: the mirrors (only for a pinned file: without a
    digest nothing could tell a mirror's bytes from upstream's), then upstream unless
    ``offline``.

    >>> [s.url for s in sources("https://h/x", ["file:///srv/m"], pinned=True, offline=False)]
    ['file:///srv/m/h/x', 'https://h/x']
    """
    out: List[Source] = []
    if pinned:
        for base in mirrors:
            if is_registry(base):
                out.append(Source(None, base))
                continue
            found = mirror_url(base, url)
            if found is not None:
                out.append(Source(found, base))
    if not offline:
        out.append(Source(url, None))
    return out
