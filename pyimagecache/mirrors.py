"""Mirrors: other places that may serve a pinned file, tried before upstream.

A mirror is trusted for nothing: the pinned digest decides whether its bytes are the right
ones. An HTTP(S) or file mirror keeps upstream's host and path under its base (``BASE/HOST/PATH``,
as a caching proxy or ``wget --mirror`` lays it out); an ``oci://REGISTRY/REPO`` mirror is a
registry holding the files as single-blob artifacts, addressed by digest.
"""

from __future__ import annotations

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
