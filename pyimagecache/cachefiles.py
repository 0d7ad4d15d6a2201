"""Every name a file in the cache can have, built and parsed here and nowhere else.

An entry ``<stem>`` (``<alias>-<snapshot>-<arch>`` or ``<url basename>-<url hash>``) owns:

- ``<stem>.raw``: the complete raw disk (existence means complete: only ever renamed into place);
- ``<stem>.raw.json``: its sidecar (where it came from, which digest, when);
- ``<stem>.raw.lock``: the entry's lock, held while it is built;
- ``<stem><ext>``: the verified source download (``<stem>.raw.src`` when upstream's name ends in
  ``.raw``, so that a source never sits at the raw disk's name), kept with ``keep_source`` or when
  a conversion failed for a reason outside the source;
- ``<source>.part``, ``<source>.part.meta``, ``<source>.part.lock``: a download in progress,
  its validators and its lock;
- ``.<name>.tmp-<hex>``: a hidden temporary sibling of ``<name>`` being written.

Every name built here is a single path component of ``[A-Za-z0-9._-]`` that does not start with
a dot, so nothing derived from a URL or an alias can leave the cache directory or pass for one of
the hidden temporary files that ``cache prune`` removes.
"""

from __future__ import annotations

import os

# A cache hit imports this module: no typing, pathlib or re at run time (each costs more than
# the hit's own work); the patterns below are compiled, and cached by re, on first use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Optional, Tuple

#: What marks a hidden temporary sibling: ``.<name>.tmp-<hex>`` (the atomic writer's).
TEMP_MARK = ".tmp-"
RAW = ".raw"
SIDECAR = ".json"  # after the raw disk's name: <stem>.raw.json
LOCK = ".lock"  # after the raw disk's name: <stem>.raw.lock
RAW_SOURCE = ".src"  # after a .raw source's name: <stem>.raw.src
PART = ".part"
PART_META = ".part.meta"
PART_LOCK = ".part.lock"
LAYER = ".layer"  # after a source's name: a containerDisk layer the source comes out of
#: Pattern matching temporary siblings left behind by a killed writer.
STALE_GLOB = ".*" + TEMP_MARK + "*"
#: Suffixes appended to another cache file's name, longest first (for parsing).
_APPENDED = (PART_META, PART_LOCK, PART, LAYER, SIDECAR, LOCK, RAW_SOURCE)

# Suffixes that name a disk image or the container around one; peeled off a URL basename to get
# the stem, and kept (as the source's extension) so the fetched file looks like what it is.
DISK_EXTENSIONS = (".raw", ".img", ".qcow2", ".qcow", ".disk", ".vmdk", ".vhd", ".vhdx", ".vdi")
CONTAINER_EXTENSIONS = (
    ".xz",
    ".gz",
    ".zst",
    ".zstd",
    ".bz2",
    ".tar",
    ".tgz",
    ".txz",
    ".ova",
    ".box",
)
_KNOWN = DISK_EXTENSIONS + CONTAINER_EXTENSIONS

_UNSAFE = r"[^A-Za-z0-9._-]+"
_MAX_BASE = 80  # leaves room for "-<hash>", the extension and ".part.meta" under NAME_MAX
URL_HASH_LEN = 12
_URL_STEM = rf"-[0-9a-f]{{{URL_HASH_LEN}}}$"
#: URL schemes whose files ensure() names after the URL.
URL_SCHEMES = ("http", "https", "file")
#: Image references ensure() pulls from a registry (``docker://`` is skopeo's spelling).
OCI_SCHEMES = ("oci", "docker")


def temp_sibling(dst: Path) -> Path:
    """A fresh, hidden name in dst's directory (same filesystem, so the rename is atomic)."""
    # os.urandom rather than secrets: importing secrets (hmac, hashlib) costs ~4 ms per CLI run.
    return dst.with_name(f".{dst.name}{TEMP_MARK}{os.urandom(4).hex()}")


def partial_of(dest: Path) -> Path:
    """Where the bytes of a download to ``dest`` collect until they are verified."""
    return dest.with_name(dest.name + PART)


def partial_meta_of(dest: Path) -> Path:
    """The validators of the partial download to ``dest``."""
    return dest.with_name(dest.name + PART_META)


def partial_lock_of(dest: Path) -> Path:
    """The lock a download to ``dest`` holds."""
    return dest.with_name(dest.name + PART_LOCK)


def cache_stem(alias: str, snapshot: str, arch: str) -> str:
    """The file-name stem shared by an alias's source, raw disk and sidecar.

    >>> cache_stem("debian-12", "20260601-2496", "amd64")
    'debian-12-20260601-2496-amd64'
    """
    return f"{alias}-{snapshot}-{arch}"


def is_url(text: str) -> bool:
    """True for the URL schemes ensure() accepts (http, https, file)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES


def is_oci(text: str) -> bool:
    """True for ``oci://`` and ``docker://`` image references."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in OCI_SCHEMES


def oci_names(repository: str, digest: str, arch: str) -> EntryNames:
    """Names for an image pulled from a registry: the repository's last component, the digest
    the reference resolved to (so a moved tag is a miss) and the arch.

    >>> oci_names("containerdisks/fedora", "sha256:" + "ab" * 32, "amd64").raw
    'fedora-abababababab-amd64.raw'
    """
    hexdigest = digest.partition(":")[2][:URL_HASH_LEN]
    base = sanitise(repository.rpartition("/")[2])[:_MAX_BASE].rstrip(".") or "image"
    return _checked(
        EntryNames(raw=f"{base}-{hexdigest}-{arch}{RAW}", source=f"{base}-{hexdigest}-{arch}.img")
    )


def split_extension(name: str) -> Tuple[str, str]:
    """``("debian-12", ".tar.xz")`` from ``debian-12.tar.xz``: peel up to three known disk or
    container suffixes; an unknown last suffix stays part of the stem.

    >>> split_extension("ubuntu-24.04-server-cloudimg-amd64.img")
    ('ubuntu-24.04-server-cloudimg-amd64', '.img')
    """
    stem, ext = name, ""
    for _ in range(3):
        dot = stem.rfind(".")
        if dot <= 0 or stem[dot:].lower() not in _KNOWN:
            break
        stem, ext = stem[:dot], stem[dot:] + ext
    return stem, ext


def url_basename(url: str) -> str:
    """The last path component of ``url``, without query or fragment, percent-decoded."""
    from urllib.parse import unquote, urlsplit  # not on the convert path (ipaddress: ~2 ms)

    path = urlsplit(url).path
    return unquote(path.rstrip("/").rpartition("/")[2])


def sanitise(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9._-]``, no leading dots or dashes, never empty."""
    import re

    clean = re.sub(_UNSAFE, "_", name).lstrip(".-_")
    return clean or "image"


def url_hash(url: str) -> str:
    import hashlib  # not on the alias hit path: it costs a few ms to import

    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:URL_HASH_LEN]


class EntryNames:
    """File names of one cache entry: the raw disk and the fetched source (a raw source is
    renamed onto the raw disk once it is verified and recognised as raw). A plain class, not a
    NamedTuple: this module is imported by a cache hit, which must not import typing."""

    __slots__ = ("raw", "source")

    def __init__(self, raw: str, source: str) -> None:
        self.raw = raw
        self.source = source

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntryNames):
            return NotImplemented
        return (self.raw, self.source) == (other.raw, other.source)

    def __hash__(self) -> int:
        return hash((self.raw, self.source))

    def __repr__(self) -> str:
        return f"EntryNames(raw={self.raw!r}, source={self.source!r})"

    @property
    def sidecar(self) -> str:
        return self.raw + SIDECAR

    @property
    def lock(self) -> str:
        return self.raw + LOCK


def alias_names(alias: str, snapshot: str, arch: str, url: str) -> EntryNames:
    """``<alias>-<snapshot>-<arch>.raw``; the source keeps the URL's extension.

    >>> alias_names("debian-12", "20260601", "amd64", "https://h/d/disk.tar.xz").source
    'debian-12-20260601-amd64.tar.xz'
    """
    stem = cache_stem(alias, snapshot, arch)
    _, ext = split_extension(sanitise(url_basename(url)))
    return _entry(stem, ext)


def url_names(url: str) -> EntryNames:
    """Names for a literal URL: sanitised basename with its disk extension stripped, plus a
    short hash of the whole URL, so two URLs sharing a basename never collide.

    >>> url_names("https://example.org/images/x.raw?sig=1").raw
    'x-5a44d152a951.raw'
    """
    base, ext = split_extension(sanitise(url_basename(url)))
    base = base[:_MAX_BASE].rstrip(".") or "image"
    stem = f"{base}-{url_hash(url)}"
    return _entry(stem, ext)


def _entry(stem: str, ext: str) -> EntryNames:
    # A source is never fetched to the raw disk's name, even when the URL ends in .raw:
    # existence of the raw means "complete raw disk", and the source is only known to be
    # raw once its bytes have been looked at.
    ext = ext.lower()
    source = stem + (RAW + RAW_SOURCE if ext == RAW else ext)
    return _checked(EntryNames(raw=stem + RAW, source=source))


def _checked(names: EntryNames) -> EntryNames:
    # Defence in depth: the regexes above already guarantee this.
    import re

    for name in (names.raw, names.source):
        if (
            not name
            or name.startswith(".")
            or re.search(_UNSAFE, name)
            or os.path.basename(name) != name
        ):
            from .errors import ImageCacheError

            raise ImageCacheError(f"refusing unsafe cache file name {name!r}")
    return names


def entry_stem(filename: str) -> Optional[str]:
    """The entry stem a cache file belongs to (``x.img.part`` -> ``x``, ``.x.raw.tmp-1a2b``
    -> ``x``), for prune and list; None for foreign files.

    >>> entry_stem("debian-12-20260601-1-amd64.raw.json"), entry_stem("notes.txt")
    ('debian-12-20260601-1-amd64', None)
    """
    name = filename
    if name.startswith("."):
        name, mark, _ = name[1:].rpartition(TEMP_MARK)
        if not mark:
            return None
    for suffix in _APPENDED:  # in order: a layer's partial is <source>.layer.part
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    stem, ext = split_extension(name)
    return stem if ext and not name.startswith(".") else None


def is_url_stem(stem: str) -> bool:
    """Whether ``stem`` was made by :func:`url_names` (it ends in the URL's hash)."""
    import re

    return bool(re.search(_URL_STEM, stem))


def is_partial(filename: str) -> bool:
    """A download's leftovers: ``*.part`` or ``*.part.meta`` (not its lock), or a layer."""
    return filename.endswith((PART, PART_META, LAYER))


def lock_of_partial(path: Path) -> Path:
    """The lock guarding a ``*.part``, ``*.part.meta`` or ``*.layer`` file."""
    if path.name.endswith(LAYER):
        return path.with_name(path.name + PART_LOCK)
    for suffix in (PART_META, PART):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)] + PART_LOCK)
    raise ValueError(f"{path.name} is not a partial download")


def entry_lock(directory: Path, stem: str) -> Path:
    return directory / (stem + RAW + LOCK)
