"""The pinned image catalog: alias -> dated snapshot -> per-arch URL and SHA-256 or SHA-512.

An arch entry may carry its own ``snapshot`` when upstream builds that arch separately (its own
build id, or an older build than the other arches): :func:`snapshot_of` gives the effective one.

The embedded ``catalog.json`` ships inside the package (read beside this module, or through
importlib.resources when the package is not plain files, so a
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
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from .arches import ARCHES, normalize_arch
from .cachefiles import cache_stem
from .catalogfile import decode_document, embedded_catalog_bytes
from .environment import environ
from .errors import CatalogError, UnsupportedArchError
from .hashing import ALGORITHMS, HEX_DIGITS, Expected, is_digest

__all__ = [
    "ARCHES",
    "ArchImage",
    "ImageInfo",
    "Provenance",
    "aliases",
    "cache_stem",
    "decode_document",
    "load_catalog",
    "normalize_arch",
    "snapshot_of",
]

# Aliases and snapshots become parts of file names: no separators, no leading dot, bounded.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: The fields of an alias entry and of its per-arch images, in the order catalog.json keeps.
INFO_FIELDS = ("distro", "version", "codename", "snapshot", "bumped_at", "arch")
ARCH_FIELDS = ("url", "sha256", "sha512", "snapshot", "provenance")
#: The fields of a pin's provenance record, in the order catalog.json keeps them.
PROVENANCE_FIELDS = ("record", "format", "signature", "key", "date", "note")
#: What a provenance record says of the record's signature: checked by gpgv against ``key``;
#: upstream (or the public record) publishes none; or present but not checked (the user
#: passed ``--no-verify-signatures``).
SIGNATURE_STATES = ("verified", "unsigned", "not-checked")
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_FORMAT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_EMBEDDED_SCHEMES = ("https",)
_USER_SCHEMES = ("https", "http", "file")

CatalogSource = Union[str, "os.PathLike[str]", Mapping[str, "ImageInfo"]]


@dataclass(frozen=True)
class Provenance:
    """Where a pin's digest was read: ``record`` (the checksum file's https URL, or a public
    record such as ``github:OWNER/REPO@COMMIT:PATH``), its ``format`` (a short name such as
    ``sha256sums``, ``bsd``, ``lima-template``), whether its ``signature`` was ``verified``
    (then ``key`` is the signing key's 40-hex fingerprint), ``unsigned`` or ``not-checked``,
    the ``date`` (YYYY-MM-DD) it was read, and an optional ``note``.

    >>> Provenance("https://e.org/SHA256SUMS", "sha256sums", "unsigned", date="2026-12-07").key
    ''
    """

    record: str
    format: str
    signature: str
    key: str = ""
    date: str = ""
    note: str = ""


@dataclass(frozen=True)
class ArchImage:
    """The pinned download for one architecture: its URL and the SHA-256 and/or SHA-512 it
    must hash to (an empty string where that algorithm is not pinned; at least one is), and
    the upstream snapshot it belongs to when that differs from the alias's ("" means the
    alias's; see :func:`snapshot_of`).

    >>> ArchImage("https://example.org/disk.raw", "0" * 64).url
    'https://example.org/disk.raw'
    """

    url: str
    sha256: str = ""
    sha512: str = ""
    snapshot: str = ""
    provenance: Optional[Provenance] = None

    @property
    def expected(self) -> Expected:
        """The pinned digests, as the downloader checks them."""
        return Expected(self.sha256 or None, self.sha512 or None)


@dataclass(frozen=True)
class ImageInfo:
    """One catalog alias: a dated upstream snapshot and an :class:`ArchImage` per architecture.

    Only ``snapshot`` (stamped into cache names, so a bump is a cache miss) and ``arch`` are used
    at run time; distro/version/codename/bumped_at feed the catalog refresher.

    >>> info = load_catalog()["debian-12"]
    >>> info.codename, sorted(info.arch)
    ('bookworm', ['amd64', 'arm64', 'ppc64le'])
    """

    distro: str
    version: str
    codename: str
    snapshot: str
    bumped_at: str
    arch: Mapping[str, ArchImage]


def snapshot_of(info: ImageInfo, arch: str) -> str:
    """The snapshot of ``info``'s image for ``arch``: the arch's own when it has one (upstream
    built that arch separately), else the alias's. Cache names are stamped with it.

    >>> info = load_catalog()["oraclelinux-9"]
    >>> info.snapshot, snapshot_of(info, "amd64"), snapshot_of(info, "arm64")
    ('OL9U8-b293', 'OL9U8-b293', 'OL9U8-b182')
    """
    image = info.arch.get(arch)
    return (image.snapshot if image is not None else "") or info.snapshot


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
        raise _fail(
            where, f"must be an object with url and sha256 or sha512, got {type(obj).__name__}"
        )
    unknown = sorted(set(obj) - set(ARCH_FIELDS))
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r} (expected {', '.join(ARCH_FIELDS)})")
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
    digests = {}
    for name in ALGORITHMS:
        value = obj.get(name)
        if value is None:
            continue
        if not is_digest(value, name):
            digits = HEX_DIGITS[name]
            raise _fail(
                where, f"field {name!r} must be {digits} lowercase hex digits, got {value!r}"
            )
        digests[name] = value
    if not digests:
        raise _fail(where, "needs a 'sha256' or 'sha512' digest (or both)")
    snapshot = obj.get("snapshot", "")
    if snapshot != "":
        _check_snapshot(where, snapshot)
    provenance = None
    if "provenance" in obj:
        provenance = parse_provenance(f"{where} provenance", obj["provenance"])
    return ArchImage(url=url, snapshot=snapshot, provenance=provenance, **digests)


def parse_provenance(where: str, obj: object) -> Provenance:
    """A pin's ``provenance`` object, validated field by field (CatalogError names the field).

    >>> parse_provenance("x", {"record": "https://e.org/SUMS", "format": "bsd",
    ...                        "signature": "verified", "key": "AB" * 20}).signature
    'verified'
    """
    problems = provenance_problems(obj)
    if problems:
        raise _fail(where, problems[0][1])
    assert isinstance(obj, dict)  # provenance_problems refuses anything else
    return Provenance(**{name: obj.get(name, "") for name in PROVENANCE_FIELDS})


def provenance_problems(obj: object) -> List[Tuple[str, str]]:
    """Every problem with a decoded ``provenance`` object, as (field, message) pairs (field
    ``""`` for the object itself); empty when it is well formed. ``catalog check`` reports
    them all, :func:`parse_provenance` raises the first.

    >>> [field for field, _ in provenance_problems({"record": "r", "signature": "verified"})]
    ['format', 'key']
    """
    if not isinstance(obj, dict):
        return [("", f"must be an object, got {type(obj).__name__}")]
    problems = [
        (str(name), f"unknown field {name!r} (expected {', '.join(PROVENANCE_FIELDS)})")
        for name in sorted(set(obj) - set(PROVENANCE_FIELDS))
    ]
    values: Dict[str, str] = {}
    for name in PROVENANCE_FIELDS:
        value = obj.get(name, "")
        if isinstance(value, str):
            values[name] = value
        else:
            problems.append((name, f"field {name!r} must be a string, got {type(value).__name__}"))
    if not values.get("record", "x").strip():
        problems.append(("record", "field 'record' must name the checksum file or public record"))
    fmt = values.get("format")
    if fmt is not None and not _FORMAT_NAME.fullmatch(fmt):
        problems.append(
            (
                "format",
                f"field 'format' {fmt!r} must be a short name "
                "([a-z0-9] then [a-z0-9-], at most 40)",
            )
        )
    signature, key = values.get("signature"), values.get("key")
    if signature is not None and signature not in SIGNATURE_STATES:
        problems.append(
            (
                "signature",
                f"field 'signature' {signature!r} must be one of {', '.join(SIGNATURE_STATES)}",
            )
        )
    if signature == "verified" and key is not None and not _FINGERPRINT.fullmatch(key):
        problems.append(
            (
                "key",
                f"field 'key' {key!r} must be the verifying key's fingerprint "
                "(40 uppercase hex digits) when 'signature' is 'verified'",
            )
        )
    if signature in SIGNATURE_STATES and signature != "verified" and key:
        problems.append(
            ("key", f"field 'key' is set but 'signature' is {signature!r}, not 'verified'")
        )
    date = values.get("date")
    if date:
        try:
            datetime.date.fromisoformat(date)
        except ValueError:
            problems.append(("date", f"field 'date' {date!r} is not a YYYY-MM-DD date"))
    return problems


def provenance_document(provenance: Provenance) -> Dict[str, str]:
    """A provenance record as catalog.json spells it (empty optional fields omitted)."""
    return {f: getattr(provenance, f) for f in PROVENANCE_FIELDS if getattr(provenance, f)}


def _check_snapshot(where: str, snapshot: object) -> None:
    if not isinstance(snapshot, str) or not _SAFE_NAME.fullmatch(snapshot):
        raise _fail(
            where,
            f"field 'snapshot' {snapshot!r} is not file-name safe "
            "([A-Za-z0-9] then [A-Za-z0-9._-], at most 100 characters)",
        )


def _parse_info(alias: str, obj: object, schemes: Tuple[str, ...]) -> ImageInfo:
    if not isinstance(obj, dict):
        raise _fail(f"alias {alias!r}", f"must be an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(INFO_FIELDS))
    if unknown:
        raise _fail(f"alias {alias!r}", f"unknown field {unknown[0]!r}")
    distro = _string(alias, obj, "distro", required=True)
    version = _string(alias, obj, "version", required=True)
    codename = _string(alias, obj, "codename", required=False)
    snapshot = _string(alias, obj, "snapshot", required=True)
    _check_snapshot(f"alias {alias!r}", snapshot)
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
                f"alias {alias!r}",
                f"unknown arch {key!r} in field 'arch' (known: {', '.join(ARCHES)})",
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
        text = embedded_catalog_bytes()
        _embedded = parse_catalog(decode_document(text, "embedded catalog.json"), embedded=True)
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
    data = decode_document(text, str(path))
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
        env = environ("PYIMAGECACHE_CATALOG")
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

    >>> aliases()[:3]
    ['almalinux-10', 'almalinux-8', 'almalinux-9']
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


# -- the document itself --------------------------------------------------------------------------


def read_document(path: Path) -> Tuple[bytes, Any]:
    """(the file's bytes, the decoded document)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CatalogError(f"catalog {path}: cannot read: {exc.strerror or exc}") from None
    return raw, decode_document(raw, str(path))


def encode_document(doc: Any) -> bytes:
    """2-space JSON with a trailing newline, as catalog.json is written.

    >>> encode_document({"a": {"b": 1}})
    b'{\\n  "a": {\\n    "b": 1\\n  }\\n}\\n'
    """
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def entry_document(info: ImageInfo) -> Dict[str, Any]:
    """One alias as catalog.json spells it (empty optional fields, digests and arch snapshots
    omitted)."""
    out: Dict[str, Any] = {}
    for name in INFO_FIELDS:
        value = getattr(info, name)
        if name == "arch":
            out["arch"] = {key: _arch_document(image) for key, image in value.items()}
        elif value:
            out[name] = value
    return out


def _arch_document(image: ArchImage) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name in ARCH_FIELDS:
        value = getattr(image, name)
        if isinstance(value, Provenance):
            out[name] = provenance_document(value)
        elif value:
            out[name] = value
    return out
