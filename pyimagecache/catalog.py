"""The pinned image catalog: alias -> dated snapshot -> per-arch URL and SHA-256.

The embedded ``catalog.json`` ships inside the package (read through importlib.resources, so a
wheel or zip import works). ``PYIMAGECACHE_CATALOG=/path.json`` or ``catalog=`` replaces it, which
is how mirrors, air-gapped sites and tests point :func:`pyimagecache.ensure` elsewhere. Parsing
happens on first use, never at import, and a malformed catalog raises :class:`CatalogError`
naming the alias and field.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from .errors import CatalogError, UnsupportedArchError

#: Architecture keys, as Go's GOARCH spells them (the origin of the schema).
ARCHES = ("amd64", "arm64")

_MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8": "arm64",
    "armv8l": "arm64",
}

# Aliases and snapshots become parts of file names: no separators, no leading dot, bounded.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INFO_FIELDS = ("distro", "version", "codename", "snapshot", "bumped_at", "arch")
_ARCH_FIELDS = ("url", "sha256")
_EMBEDDED_SCHEMES = ("https",)
_USER_SCHEMES = ("https", "http", "file")

CatalogSource = Union[str, "os.PathLike[str]", Mapping[str, "ImageInfo"]]


@dataclass(frozen=True)
class ArchImage:
    """The pinned download for one architecture: its URL and the SHA-256 it must hash to.

    >>> ArchImage("https://example.org/disk.raw", "0" * 64).url
    'https://example.org/disk.raw'
    """

    url: str
    sha256: str


@dataclass(frozen=True)
class ImageInfo:
    """One catalog alias: a dated upstream snapshot and an :class:`ArchImage` per architecture.

    Only ``snapshot`` (stamped into cache names, so a bump is a cache miss) and ``arch`` are used
    at run time; distro/version/codename/bumped_at feed the catalog refresher.

    >>> info = load_catalog()["debian-12"]
    >>> info.codename, sorted(info.arch)
    ('bookworm', ['amd64', 'arm64'])
    """

    distro: str
    version: str
    codename: str
    snapshot: str
    bumped_at: str
    arch: Mapping[str, ArchImage]


def cache_stem(alias: str, snapshot: str, arch: str) -> str:
    """The file-name stem shared by an alias's source, raw disk and sidecar.

    >>> cache_stem("debian-12", "20260601-2496", "amd64")
    'debian-12-20260601-2496-amd64'
    """
    return f"{alias}-{snapshot}-{arch}"


def normalize_arch(name: Optional[str] = None) -> str:
    """``platform.machine()`` (or ``name``) as a catalog arch key: x86_64/AMD64 -> amd64,
    aarch64/arm64 -> arm64. Anything else comes back lower-cased, for the error to name."""
    if name is None:
        import platform

        name = platform.machine()
    key = name.strip().lower()
    return _MACHINE_TO_ARCH.get(key, key)


def _fail(where: str, message: str) -> CatalogError:
    return CatalogError(f"catalog {where}: {message}")


def _string(alias: str, obj: Mapping[str, object], field: str, *, required: bool) -> str:
    value = obj.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        kind = "missing" if field not in obj else f"a {type(value).__name__}"
        raise _fail(f"alias {alias!r}", f"field {field!r} must be a string, got {kind}")
    return value


def _parse_arch_image(alias: str, arch: str, obj: object, schemes: Tuple[str, ...]) -> ArchImage:
    where = f"alias {alias!r} arch {arch!r}"
    if not isinstance(obj, dict):
        raise _fail(where, f"must be an object with url and sha256, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_ARCH_FIELDS))
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r} (expected url, sha256)")
    url = obj.get("url")
    if not isinstance(url, str) or not url:
        raise _fail(where, "field 'url' must be a non-empty string")
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise _fail(where, f"field 'url' {url!r} must start with {allowed}")
    if parts.scheme != "file" and not parts.hostname:
        raise _fail(where, f"field 'url' {url!r} has no host")
    if not parts.path.rstrip("/"):
        raise _fail(where, f"field 'url' {url!r} names no file")
    sha = obj.get("sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _fail(where, f"field 'sha256' must be 64 lowercase hex digits, got {sha!r}")
    return ArchImage(url=url, sha256=sha)


def _parse_info(alias: str, obj: object, schemes: Tuple[str, ...]) -> ImageInfo:
    if not isinstance(obj, dict):
        raise _fail(f"alias {alias!r}", f"must be an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_INFO_FIELDS))
    if unknown:
        raise _fail(f"alias {alias!r}", f"unknown field {unknown[0]!r}")
    distro = _string(alias, obj, "distro", required=True)
    version = _string(alias, obj, "version", required=True)
    codename = _string(alias, obj, "codename", required=False)
    snapshot = _string(alias, obj, "snapshot", required=True)
    if not _SAFE_NAME.fullmatch(snapshot):
        raise _fail(
            f"alias {alias!r}",
            f"field 'snapshot' {snapshot!r} is not file-name safe "
            "([A-Za-z0-9] then [A-Za-z0-9._-], at most 100 characters)",
        )
    bumped_at = _string(alias, obj, "bumped_at", required=False)
    if bumped_at:
        try:
            datetime.date.fromisoformat(bumped_at)
        except ValueError:
            raise _fail(
                f"alias {alias!r}", f"field 'bumped_at' {bumped_at!r} is not a YYYY-MM-DD date"
            ) from None
    arch_obj = obj.get("arch")
    if not isinstance(arch_obj, dict) or not arch_obj:
        raise _fail(f"alias {alias!r}", "field 'arch' must be a non-empty object")
    arch: Dict[str, ArchImage] = {}
    for key, value in arch_obj.items():
        if key not in ARCHES:
            raise _fail(
                f"alias {alias!r}", f"unknown arch {key!r} in field 'arch' (known: amd64, arm64)"
            )
        arch[key] = _parse_arch_image(alias, key, value, schemes)
    return ImageInfo(
        distro=distro,
        version=version,
        codename=codename,
        snapshot=snapshot,
        bumped_at=bumped_at,
        arch=MappingProxyType(arch),
    )


def parse_catalog(data: object, *, embedded: bool) -> Dict[str, ImageInfo]:
    """Validate decoded catalog JSON. The embedded catalog must use https URLs; a user catalog
    may also use http and file URLs (the pinned SHA-256 still guards integrity).

    >>> parse_catalog({}, embedded=False)
    {}
    """
    if not isinstance(data, dict):
        raise CatalogError(
            f"catalog: top level must be an object of aliases, got {type(data).__name__}"
        )
    schemes = _EMBEDDED_SCHEMES if embedded else _USER_SCHEMES
    out: Dict[str, ImageInfo] = {}
    for alias, obj in data.items():
        if not _SAFE_NAME.fullmatch(alias):
            raise _fail(
                f"alias {alias!r}",
                "name is not file-name safe ([A-Za-z0-9] then [A-Za-z0-9._-], at most 100)",
            )
        out[alias] = _parse_info(alias, obj, schemes)
    return out


_embedded: Optional[Dict[str, ImageInfo]] = None
_user: Dict[Tuple[str, int, int], Dict[str, ImageInfo]] = {}


def _load_embedded() -> Dict[str, ImageInfo]:
    global _embedded
    if _embedded is None:
        from importlib.resources import files

        text = files(__package__ or "pyimagecache").joinpath("catalog.json").read_bytes()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CatalogError(f"embedded catalog.json is not valid JSON: {exc}") from None
        _embedded = parse_catalog(data, embedded=True)
    return _embedded


def _load_user(path: Path) -> Dict[str, ImageInfo]:
    try:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        cached = _user.get(key)
        if cached is not None:
            return cached
        text = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CatalogError(f"catalog {path}: not valid JSON: {exc}") from None
    try:
        parsed = parse_catalog(data, embedded=False)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None
    _user.clear()  # one user catalog at a time is the norm; do not grow without bound
    _user[key] = parsed
    return parsed


def load_catalog(path: Optional[Path] = None) -> Dict[str, ImageInfo]:
    """The catalog at ``path``; without one, ``$PYIMAGECACHE_CATALOG`` if set, else the embedded
    catalog. Parsed once and cached (a user file is re-read when its mtime or size changes).

    >>> "debian-12" in load_catalog()
    True
    """
    if path is None:
        env = os.environ.get("PYIMAGECACHE_CATALOG")
        if not env:
            return _load_embedded()
        path = Path(env)
    return _load_user(Path(path))


def resolve_catalog(catalog: Optional[CatalogSource] = None) -> Mapping[str, ImageInfo]:
    """``catalog=`` as accepted by aliases()/ensure(): None, a JSON path, or parsed entries."""
    if catalog is None or isinstance(catalog, (str, os.PathLike)):
        return load_catalog(None if catalog is None else Path(catalog))
    if isinstance(catalog, Mapping):
        for alias, info in catalog.items():
            if not isinstance(info, ImageInfo):
                raise CatalogError(f"catalog alias {alias!r}: expected an ImageInfo")
        return catalog
    raise CatalogError(f"catalog= must be a path or a mapping, got {type(catalog).__name__}")


def aliases(catalog: Optional[CatalogSource] = None) -> List[str]:
    """The catalog's aliases, sorted: the source of truth for a test matrix of OS images.

    A new catalog entry is then covered without editing a hand-kept list, e.g. with pytest::

        import pyimagecache
        import pytest

        @pytest.mark.parametrize("alias", pyimagecache.aliases())
        def test_boots(alias):
            disk = pyimagecache.ensure(alias)
            ...

    >>> aliases()[:2]
    ['debian-11', 'debian-12']
    """
    return sorted(resolve_catalog(catalog))


def lookup(
    alias: str, arch: Optional[str] = None, catalog: Optional[CatalogSource] = None
) -> Tuple[ImageInfo, str, ArchImage]:
    """The entry for ``alias`` on ``arch`` (default: this machine's), as (info, arch, image).

    Raises KeyError for an unknown alias (callers decide whether it may be a URL) and
    :class:`UnsupportedArchError` when the alias has no image for the arch.
    """
    info = resolve_catalog(catalog)[alias]
    key = normalize_arch(arch)
    image = info.arch.get(key)
    if image is None:
        have = ", ".join(sorted(info.arch))
        raise UnsupportedArchError(f"{alias} has no image for arch {key!r} (it has: {have})")
    return info, key, image


def suggest(name: str, catalog: Mapping[str, ImageInfo]) -> List[str]:
    """Aliases close to ``name``, best first, for "did you mean" messages."""
    import difflib

    return difflib.get_close_matches(name, sorted(catalog), n=3, cutoff=0.5)
