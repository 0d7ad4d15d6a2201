"""``ensure``: a catalog alias or URL in, the path of a complete raw disk in the cache out.

Only complete, verified files are ever published (atomic rename), so on the hot path existence
means complete: a hit costs one stat, no network, no hashing. A miss takes the entry's lock
(other processes and threads wait, then find the raw), fetches the source (resuming a partial
left by a killed run), converts it and records a sidecar ``<raw>.json``.

A conversion that fails because of the source (corrupt, unsupported) removes it; one that fails
for any other reason (no space, an I/O error, a signal, a missing extra) keeps the verified
source, so the next call converts it without downloading again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

from . import formats
from ._lock import FileLock, OnWait
from ._log import info as _log
from ._log import warning as _warn
from ._progress import ProgressCallback
from .cachedir import resolve_cache_dir
from .cachefiles import EntryNames, alias_names, is_oci, is_url, url_basename, url_names
from .catalog import CatalogSource, ImageInfo, lookup, resolve_catalog, snapshot_of, suggest
from .errors import (
    CatalogError,
    ChangedEntryError,
    ConversionError,
    DigestConflictError,
    DownloadError,
    ImageCacheError,
    ImageFormatError,
    MissingExtraError,
    NotADiskError,
    UnknownImageError,
    UnsupportedArchError,
    UnsupportedFormatError,
)
from .hashing import Expected, file_digests
from .settings import Settings
from .sidecar import changed_since_published, read_sidecar, write_sidecar
from .sourcefile import GrowingFile

PathLike = Union[str, "os.PathLike[str]"]
#: Progress callback for one phase ("download", "convert"), or None for no progress.
PhaseProgress = Callable[[str], Optional[ProgressCallback]]


@dataclass(frozen=True)
class Request:
    """What ensure() was asked for, resolved: where to fetch, what to expect, what to call it."""

    url: str
    expected: Expected
    names: EntryNames
    #: What the caller gave (sha256=/sha512=); for an alias it equals the pin or is empty.
    given: Expected = Expected()
    alias: Optional[str] = None
    snapshot: Optional[str] = None
    arch: Optional[str] = None
    info: Optional[ImageInfo] = None  # the catalog entry, for an alias
    fallback_from: Optional[str] = None  # the pinned snapshot this one stands in for
    oci: Any = None  # for an oci:// reference: what the registry resolved it to (Resolved)
    oci_digest: Optional[str] = None  # the digest an oci:// reference resolved to (its name)

    @property
    def label(self) -> str:
        return self.alias or self.url


def resolve(
    url_or_alias: str,
    *,
    arch: Optional[str] = None,
    sha256: Optional[str] = None,
    sha512: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
) -> Request:
    """Turn an alias or URL into a :class:`Request` without touching the cache or network."""
    given = Expected.parse(sha256, sha512)
    if is_url(url_or_alias):
        key = None
        if arch is not None:  # a URL names one file, but a misspelt arch is still a mistake
            from .arches import ARCHES, normalize_arch

            key = normalize_arch(arch)
            if key not in ARCHES:
                raise UnsupportedArchError(
                    f"unknown arch {arch!r} (known: {', '.join(ARCHES)}, or the machine "
                    "spellings x86_64, aarch64, ...)"
                )
        names = url_names(url_or_alias)
        return Request(url=url_or_alias, expected=given, names=names, given=given, arch=key)
    entries = resolve_catalog(catalog)
    if url_or_alias not in entries:
        raise UnknownImageError(_unknown_message(url_or_alias, entries))
    info, key, image = lookup(url_or_alias, arch, entries)
    pinned = image.expected
    differs = given.agrees_with(pinned)
    if differs is not None:
        raise CatalogError(
            f"{differs} {getattr(given, differs)} does not match the catalog's pin for "
            f"{url_or_alias} on {key} ({getattr(pinned, differs)})"
        )
    snapshot = snapshot_of(info, key)
    return Request(
        url=image.url,
        expected=pinned,
        names=alias_names(url_or_alias, snapshot, key, image.url),
        given=given,
        alias=url_or_alias,
        snapshot=snapshot,
        arch=key,
        info=info,
    )


def _resolve_oci(text: str, arch: Optional[str], settings: Settings) -> Request:
    """An ``oci://`` or ``docker://`` reference as a Request named by the digest it resolves
    to for ``arch``: a reference by digest needs no network for that (a cache hit stays one
    stat), a tag is resolved at the registry every time (a moved tag is a miss)."""
    from .cachefiles import oci_names
    from .catalog import normalize_arch
    from .oci import parse_reference
    from .oci import resolve as resolve_reference

    reference = parse_reference(text)
    key = normalize_arch(arch)
    resolved = None
    if reference.digest is None:
        if settings.offline:
            raise DownloadError(
                f"{text}: offline mode ({offline_origin(settings)}) forbids resolving the tag "
                f"{reference.tag!r} at {reference.registry}; name the image by digest "
                "(…@sha256:…) to use a copy already in the cache",
                url=text,
            )
        resolved = resolve_reference(reference, key, settings)
        digest = resolved.index_digest or resolved.manifest_digest or resolved.blob.digest
    else:
        digest = reference.digest
    return Request(
        url=str(reference),
        expected=Expected(),
        names=oci_names(reference.repository, digest, key),
        arch=key,
        oci=resolved if resolved is not None else reference,
        oci_digest=digest,
    )


def _unknown_message(name: str, entries: object) -> str:
    message = f"{name!r} is neither a catalog alias nor an http(s):// or file:// URL"
    close = suggest(name, entries)  # type: ignore[arg-type]
    if close:
        message += f"; did you mean {', '.join(close)}?"
    elif os.path.exists(name):
        message += f"; for a local file use file://{os.path.abspath(name)}"
    else:
        message += " (see `pyimagecache list`)"
    return message


def ensure(
    url_or_alias: str,
    cache_dir: Optional[PathLike] = None,
    *,
    arch: Optional[str] = None,
    sha256: Optional[str] = None,
    sha512: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
    progress: Optional[ProgressCallback] = None,
    keep_source: bool = False,
    timeout: Any = None,
    retries: Optional[int] = None,
    ca_bundle: Optional[str] = None,
    mirrors: Optional[Sequence[str]] = None,
    offline: Optional[bool] = None,
    strict: Optional[bool] = None,
    settings: Optional[Settings] = None,
) -> Path:
    """Return the path of a complete raw disk for a catalog alias or an http(s)/file URL,
    downloading (verified) and converting it on the first call, instantly afterwards.

    ``cache_dir`` defaults to ``$PYIMAGECACHE_CACHE_DIR`` or the platform cache directory;
    ``arch`` to this machine's (amd64/arm64/...). A literal URL is unverified unless ``sha256``
    or ``sha512`` is given. ``progress(done, total)`` is called during the download, then the
    conversion. ``catalog`` (a JSON path or parsed entries) replaces the embedded catalog.
    ``timeout``, ``retries`` and ``ca_bundle`` are as for :func:`fetch`. ``mirrors`` (default
    ``$PYIMAGECACHE_MIRRORS``) are tried in order before upstream for a pinned file, each an
    ``http(s)://`` or ``file://`` base holding ``BASE/HOST/PATH``, or an ``oci://REGISTRY/REPO``;
    ``offline=True`` (``PYIMAGECACHE_OFFLINE=1``) never contacts upstream. When an alias's
    pinned snapshot is gone upstream (404/410), the newest complete snapshot of the release is
    used, verified against upstream's checksum file, with a warning; ``strict=True``
    (``PYIMAGECACHE_STRICT=1``) refuses instead. ``settings`` gives all of those at once
    (default: from the environment, see README).

    >>> disk = ensure("debian-12")  # doctest: +SKIP
    >>> disk.name  # doctest: +SKIP
    'debian-12-20260601-2496-amd64.raw'

    A local file works the same way (here a raw disk, verified by its digest):

    >>> import hashlib, pathlib, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> image = bytes(512) + b"boot" + bytes((1 << 20) - 4)  # whole 512-byte sectors
    >>> _ = (tmp / "disk.img").write_bytes(image)
    >>> disk = ensure((tmp / "disk.img").as_uri(), tmp / "cache",
    ...               sha256=hashlib.sha256(image).hexdigest())
    >>> disk.read_bytes() == image, disk.suffix
    (True, '.raw')
    """
    return ensure_entry(
        url_or_alias,
        cache_dir,
        arch=arch,
        sha256=sha256,
        sha512=sha512,
        catalog=catalog,
        progress_for=lambda phase: progress,
        keep_source=keep_source,
        settings=settings,
        overrides={
            "timeout": timeout,
            "retries": retries,
            "ca_bundle": ca_bundle,
            "mirrors": mirrors,
            "offline": offline,
            "strict": strict,
        },
    ).path


class Ensured(NamedTuple):
    """What :func:`ensure_entry` did: the raw disk's ``path``, and whether it was a ``hit``
    (handed out as it was: nothing downloaded or converted by this call)."""

    path: Path
    hit: bool


def ensure_phased(*args: Any, **kwargs: Any) -> Path:
    """ensure() with one progress callback per phase ("download", "convert"): the path of
    :func:`ensure_entry`, which takes the same arguments."""
    return ensure_entry(*args, **kwargs).path


def ensure_entry(
    url_or_alias: str,
    cache_dir: Optional[PathLike] = None,
    *,
    arch: Optional[str] = None,
    sha256: Optional[str] = None,
    sha512: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
    progress_for: PhaseProgress = lambda phase: None,
    keep_source: bool = False,
    settings: Optional[Settings] = None,
    overrides: Optional[dict[str, Any]] = None,
    on_wait: Optional[OnWait] = None,
) -> Ensured:
    """ensure() with one progress callback per phase ("download", "convert"), saying also
    whether the entry was a hit; ``on_wait(pid)`` is called once if another process holds the
    entry's lock."""
    directory = resolve_cache_dir(cache_dir)
    if is_oci(url_or_alias):
        settings = _settings(settings, overrides)  # a tag is resolved at the registry first
        request = _resolve_oci(url_or_alias, arch, settings)
    else:
        request = resolve(url_or_alias, arch=arch, sha256=sha256, sha512=sha512, catalog=catalog)
    raw = directory / request.names.raw
    entry = examine(request, raw)
    if entry.hit:
        return Ensured(raw, True)
    if request.alias is not None and entry.missing:
        stand_in = _existing_fallback(request, directory)  # the pin aged out before
        if stand_in is not None:
            return Ensured(stand_in, True)
    if request.oci is None:
        settings = _settings(settings, overrides)
    assert settings is not None
    try:
        return build_entry(
            request, directory, progress_for, settings, keep_source=keep_source, on_wait=on_wait
        )
    except DownloadError as exc:
        if request.alias is None or exc.status not in AGED_OUT or exc.url != request.url:
            raise
        path = _after_aged_out_pin(
            request, directory, progress_for, settings, exc, keep_source=keep_source
        )
        return Ensured(path, False)


class Entry(NamedTuple):
    """What a cache entry holds for a request, from one stat and its sidecar."""

    raw: Path
    #: The raw exists, matches its record, and agrees with any digest the caller gave.
    hit: bool
    missing: bool = False
    #: What changed since it was published ("" when nothing did, or it was never recorded).
    change: str = ""
    #: The caller gave a digest the entry was not verified against: fetch it again.
    refetch: bool = False


def examine(request: Request, raw: Path, *, heal: bool = False) -> Entry:
    """Whether ``raw`` may be handed out for ``request``: one stat and the sidecar, no
    hashing. A raw whose size or modification time differ from its record changed after it
    was published (a VM booted on it, an editor); a digest given now that disagrees with the
    one the entry was verified against is a :class:`DigestConflictError` (a typo: the entry is
    left as it is); one it was not verified against means fetching again. With ``heal`` (under
    the entry's lock), a raw whose modification time alone changed is read once: content as
    published, the record takes the new time (a cache copied without its times), a hit."""
    try:
        st = os.stat(raw)
    except FileNotFoundError:
        return Entry(raw, hit=False, missing=True)
    record = read_sidecar(raw)
    change = changed_since_published(st, record)
    if change and heal and _content_as_published(raw, st, record):
        change = ""
    if change:
        return Entry(raw, hit=False, change=change)
    for algorithm, given in request.given.items():
        recorded = record.get(algorithm)
        if recorded == given:
            continue
        if recorded is None or not record.get("verified"):
            return Entry(raw, hit=False, refetch=True)  # never verified against it: ask upstream
        raise DigestConflictError(
            f"{request.label}: the {algorithm} given, {given}, disagrees with the {algorithm} "
            f"the cached entry {raw} was verified against, {recorded}; left the entry as it "
            "is (a typo? to replace it, remove it first)",
            entry=str(raw),
            algorithm=algorithm,
            given=given,
            recorded=str(recorded),
        )
    return Entry(raw, hit=True)


def _content_as_published(raw: Path, st: os.stat_result, record: Dict[str, Any]) -> bool:
    """Whether ``raw``, whose size is as published but not its modification time, still holds
    the content its record names; if so, record the new time."""
    content = record.get("content")
    if st.st_size != record.get("size") or not isinstance(content, str):
        return False
    from .contentdigest import file_content_digest
    from .verify import record_mtime

    if file_content_digest(raw) != content:
        return False
    record_mtime(raw)
    _log("%s: modified at another time than published, but its content is as published", raw)
    return True


def request_for_entry(raw: Path, record: Dict[str, Any]) -> Request:
    """The request that built the cached ``raw``, from its sidecar: its URL (or registry
    reference by digest), the digests it was verified against (the bytes it was made from, so
    a rebuild restores exactly them or fails), its alias, snapshot and arch."""
    url = record.get("url")
    if not isinstance(url, str) or not url:
        raise ChangedEntryError(
            f"{raw}: its sidecar names no source; remove it and run `pyimagecache ensure` again",
            entry=str(raw),
        )
    expected = Expected.parse(record.get("sha256"), record.get("sha512"))
    alias, snapshot, arch = (record.get(k) for k in ("alias", "snapshot", "arch"))
    oci_digest = record.get("oci_digest")
    if is_oci(url):
        from .cachefiles import oci_names
        from .oci import parse_reference

        if not isinstance(oci_digest, str) or not isinstance(arch, str):
            raise ChangedEntryError(
                f"{raw}: its sidecar does not say which digest {url} resolved to; remove it "
                "and run `pyimagecache ensure` again",
                entry=str(raw),
            )
        reference = parse_reference(url)
        by_digest = parse_reference(
            f"oci://{reference.registry}/{reference.repository}@{oci_digest}"
        )
        names = oci_names(reference.repository, oci_digest, arch)
        request = Request(
            url=url, expected=expected, names=names, arch=arch, oci=by_digest, oci_digest=oci_digest
        )
    elif isinstance(alias, str) and isinstance(snapshot, str) and isinstance(arch, str):
        names = alias_names(alias, snapshot, arch, url)
        request = Request(
            url=url,
            expected=expected,
            names=names,
            alias=alias,
            snapshot=snapshot,
            arch=arch,
            fallback_from=record.get("fallback_from"),
        )
    else:
        request = Request(url=url, expected=expected, names=url_names(url), arch=arch)
    if request.names.raw != raw.name:
        raise ChangedEntryError(
            f"{raw}: its sidecar describes another entry ({request.names.raw}); remove it and run "
            "`pyimagecache ensure` again",
            entry=str(raw),
        )
    return request


def rebuild_entry(
    raw: Path, settings: Any, progress_for: Any = None, *, reason: str = "it changed"
) -> Path:
    """Build the cached ``raw`` again from its kept source or the network, verified against
    the digests it was first verified against (``cache verify --repair``)."""
    request = request_for_entry(raw, read_sidecar(raw))
    base = settings if isinstance(settings, Settings) else Settings.from_environment()
    phases: PhaseProgress = progress_for if progress_for is not None else (lambda phase: None)
    return build_entry(request, raw.parent, phases, base, force=reason).path


def offline_origin(settings: Settings) -> str:
    """What set offline mode, for messages: the flag, the variable or the keyword."""
    return settings.offline_from or "offline"


def _settings(settings: Optional[Settings], overrides: Optional[dict[str, Any]]) -> Settings:
    """``settings`` (default: from the environment) with the caller's keywords on top; made
    only once a cache hit is ruled out, or a reference needs the registry."""
    base = settings if settings is not None else Settings.from_environment()
    return base.overridden(**(overrides or {}))


#: Statuses that say a pinned snapshot is gone upstream (pruned), not that the network failed.
AGED_OUT = (404, 410)


def _after_aged_out_pin(
    request: Request,
    directory: Path,
    progress_for: PhaseProgress,
    settings: Settings,
    gone: DownloadError,
    *,
    keep_source: bool,
) -> Path:
    """The pinned snapshot answered 404/410: refuse (strict), or use the newest complete
    snapshot of the same release, verified against upstream's checksum file, cached under its
    own stamped name, with a warning and ``fallback_from`` in its sidecar."""
    assert request.alias is not None and request.info is not None and request.arch is not None
    fix = (
        "run `pyimagecache catalog refresh` for a catalog of your own, or upgrade pyimagecache "
        "for a newer embedded catalog"
    )
    if settings.strict:
        raise DownloadError(
            f"{request.alias}: the pinned snapshot {request.snapshot} is gone upstream "
            f"(HTTP {gone.status} for {request.url}) and strict mode forbids a fallback; {fix}",
            url=request.url,
            status=gone.status,
        ) from gone
    from .refresh.fallback import newer_pin

    try:
        pin = newer_pin(
            request.alias, request.info, request.arch, settings=settings, keyring=settings.keyring
        )
    except ImageCacheError as exc:
        raise DownloadError(
            f"{request.alias}: the pinned snapshot {request.snapshot} is gone upstream (HTTP "
            f"{gone.status}) and no newer one could be used: {exc}; {fix}",
            url=request.url,
            status=gone.status,
        ) from exc
    signature = {
        "verified": f" (signature verified, key {pin.key})",
        "not-checked": " (its signature NOT checked: signature verification is off)",
    }.get(pin.signature, " (upstream signs nothing)")
    _warn(
        "%s: pinned snapshot %s is gone upstream; using the newer %s, verified against %s%s",
        request.alias,
        request.snapshot,
        pin.snapshot,
        pin.source,
        signature,
    )
    stand_in = Request(
        url=pin.url,
        expected=pin.expected,
        names=alias_names(request.alias, pin.snapshot, request.arch, pin.url),
        alias=request.alias,
        snapshot=pin.snapshot,
        arch=request.arch,
        info=request.info,
        fallback_from=request.snapshot,
    )
    return build(stand_in, directory, progress_for, settings, keep_source=keep_source)


def _existing_fallback(request: Request, directory: Path) -> Optional[Path]:
    """A disk an earlier fallback cached for this pin, found without the network."""
    from .cachefiles import cache_stem

    pattern = cache_stem(str(request.alias), "*", str(request.arch)) + ".raw"
    if not directory.is_dir():
        return None
    for raw in sorted(directory.glob(pattern), reverse=True):
        record = read_sidecar(raw)
        if record.get("fallback_from") == request.snapshot and record.get("alias") == request.alias:
            if changed_since_published(raw.stat(), record):
                return None  # ensure goes the long way, which rebuilds it with a warning
            return raw
    return None


def verified_source(
    alias: str,
    cache_dir: Optional[PathLike] = None,
    *,
    arch: Optional[str] = None,
    catalog: Optional[CatalogSource] = None,
    settings: Optional[Settings] = None,
) -> Tuple[Path, Request]:
    """The verified upstream file of ``alias`` in the cache (what ``keep_source`` keeps), and
    its Request: the kept source, the raw disk itself when upstream's file was raw, else
    downloaded and verified again (the cache may hold only the raw). For ``pyimagecache
    push``, which shares that file with a fleet."""
    request = resolve(alias, arch=arch, catalog=catalog)
    settings = settings if settings is not None else Settings.from_environment()
    raw = ensure(
        alias, cache_dir, arch=request.arch, catalog=catalog, keep_source=True, settings=settings
    )
    source = raw.parent / request.names.source
    if source.exists():
        return source, request
    if read_sidecar(raw).get("source_format") == formats.RAW:
        return raw, request  # the verified download was published as the disk itself
    from .download.to_file import fetch_verified

    _log("%s: the cache holds only the raw disk; fetching %s again", alias, request.url)
    fetch_verified(request.url, source, request.expected, settings)
    return source, request


def build(
    request: Request,
    directory: Path,
    progress_for: PhaseProgress,
    settings: Settings,
    *,
    keep_source: bool = False,
    on_wait: Optional[OnWait] = None,
) -> Path:
    """The slow path of ensure(): under the entry's lock, fetch, convert, publish, record."""
    return build_entry(
        request, directory, progress_for, settings, keep_source=keep_source, on_wait=on_wait
    ).path


def build_entry(
    request: Request,
    directory: Path,
    progress_for: PhaseProgress,
    settings: Settings,
    *,
    keep_source: bool = False,
    force: str = "",
    on_wait: Optional[OnWait] = None,
) -> Ensured:
    """:func:`build`, saying whether another process finished the entry while we waited.
    ``force`` (why: ``cache verify`` found its content changed) rebuilds even a hit."""
    names = request.names
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / names.raw
    source = directory / names.source
    with FileLock(directory / names.lock, on_wait=on_wait):
        entry = examine(request, raw, heal=True)
        if force and not entry.missing:
            entry = entry._replace(hit=False, change=force)
        if entry.hit:
            return Ensured(raw, True)  # another process or thread finished it while we waited
        if entry.change:
            _refuse_offline_repair(request, entry, source, settings)
            _warn(
                "%s changed since it was published (%s); building it again from %s",
                raw,
                entry.change,
                "the kept source" if source.exists() else "its source",
            )
        elif entry.refetch:
            _log("%s was not verified against the digest given; fetching again", raw)
        # Whatever the entry holds stays in place until its replacement is verified and
        # converted: a failed rebuild leaves it as it was.
        rebuild = not entry.missing
        wanted = tuple(dict.fromkeys((*request.expected.algorithms, "sha256")))
        digests = _reuse_source(request, source, wanted)
        scratch: Optional[Path] = None
        content = ""
        fmt = ""
        if digests is None:
            digests, scratch, fmt, content = _download_converting(
                request, source, raw, settings, progress_for, wanted, again=rebuild
            )
        what = f"{request.label} ({source.name})"
        try:
            if scratch is None:
                fmt, head = formats.sniff_file(source)
                formats.check_convertible(fmt, what)
                formats.check_self_contained(fmt, head, what)
            _check_disk(request, source, fmt)
            if scratch is None:
                scratch, content = _convert(request, source, raw, fmt, progress_for("convert"))
            if scratch != source:
                _check_raw_output(request, source, scratch)
        except (MissingExtraError, ImageFormatError, ConversionError, OSError) as exc:
            if scratch is not None and scratch != source:
                _remove(scratch)
            raise _conversion_failed(request, source, raw, fmt, exc) from exc
        _publish(request, scratch, raw, digests, fmt, content)
        if fmt != formats.RAW and not keep_source:
            _remove(source)
    return Ensured(raw, False)


def _refuse_offline_repair(
    request: Request, entry: Entry, source: Path, settings: Settings
) -> None:
    """A changed entry that cannot be rebuilt here (offline, no kept source, no mirror that
    may serve it) is one error saying what changed and how to repair it."""
    if not settings.offline or source.exists():
        return
    if settings.mirrors and request.expected and request.oci is None:
        return  # a mirror may serve the pinned file
    raise ChangedEntryError(
        f"{entry.raw} changed since it was published ({entry.change}), and offline mode "
        f"({offline_origin(settings)}) forbids fetching its source again; run "
        "`pyimagecache cache verify --repair` once online (or remove the file), and boot VMs "
        "on a copy (`pyimagecache copy`), never on the cached disk itself",
        entry=str(entry.raw),
        change=entry.change,
    )


def _check_disk(request: Request, path: Path, fmt: str, name: Optional[str] = None) -> None:
    """Refuse what is evidently not a disk image (a page, text, a size no disk has, bytes
    that are not what the name claims), whatever digest it matched: the pin was wrong.
    ``name`` is what upstream calls the file (default: the URL's last component)."""
    if request.oci is not None and name is None:
        return  # a registry names blobs by digest; what it serves is checked by its layout
    if name is None:
        name = url_basename(request.url)
    why = formats.not_a_disk(path, fmt, name)
    if why is not None:
        with open(path, "rb") as f:
            looks = formats.looks_like(f.read(formats.TEXT_PROBE)) or ""
        raise NotADiskError(f"{request.label}: {name} {why}", looks_like=looks)


def _check_raw_output(request: Request, source: Path, disk: Path) -> None:
    """Refuse a converted disk that itself begins (or ends) like an image format: a VMM or
    tool that probes formats instead of being told "raw" would open the cached disk as that
    format, and follow whatever its header names (the old qemu raw-probing hole)."""
    fmt, _ = formats.sniff_file(disk)
    if fmt != formats.RAW:
        raise NotADiskError(
            f"{request.label}: the disk inside {source.name} is laid out as a {fmt} image "
            f"would be: anything that probes the cached raw's format would open it as {fmt}; "
            "refused",
            looks_like=f"a {fmt} image",
        )


def _publish(
    request: Request,
    scratch: Path,
    raw: Path,
    digests: Dict[str, str],
    fmt: str,
    content: str,
) -> None:
    """Record the converted disk in its sidecar, then publish it read-only (a VMM opening it
    read-write fails loudly instead of changing it). The sidecar goes first: a raw in the
    cache always has its record, and a record without its raw is only a miss."""
    from ._atomic import publish

    os.chmod(scratch, 0o444)
    st = os.stat(scratch)
    write_sidecar(
        raw,
        {
            "url": request.url,
            **digests,
            "verified": bool(request.expected) or request.oci is not None,
            "alias": request.alias,
            "snapshot": request.snapshot,
            "arch": request.arch,
            "source_format": fmt,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "content": content,
            "oci_digest": request.oci_digest,
            "fallback_from": request.fallback_from,
        },
    )
    publish(scratch, raw)


def _conversion_failed(
    request: Request, source: Path, raw: Path, fmt: str, exc: BaseException
) -> BaseException:
    """The error to raise for a failed conversion, after deciding what to keep: a source at
    fault is removed (no retry can help), any other failure keeps the verified download. The
    entry ``raw`` itself is never touched: whatever it held before stays."""
    if isinstance(exc, ImageFormatError):
        _remove(source)
        if isinstance(exc, UnsupportedFormatError):
            return exc  # already names the format and what is supported
        # The same class (VmdkCorruptError, ContainerError, ...), saying whose fault it was.
        return exc.with_message(
            f"{request.label}: the source {source.name} ({fmt}) is at fault, removed it: {exc}"
        )
    if isinstance(exc, MissingExtraError):
        return exc  # installing the extra and running again uses the kept source
    return ConversionError(
        f"{request.label}: converting {source.name} ({fmt}) failed ({_reason(exc)}); kept the "
        f"verified download {source}, the next run converts it without downloading"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _reuse_source(
    request: Request, source: Path, wanted: Sequence[str]
) -> Optional[Dict[str, str]]:
    """The digests of a complete source already in the cache (left by keep_source, or by a
    run whose conversion failed or was killed), or None when it must be downloaded."""
    if not source.exists():
        return None
    # Published atomically, so complete; re-hash it: we cannot know how it got here.
    actual = file_digests(source, wanted)
    if request.expected.matches(actual):
        _log("%s: reusing downloaded %s", request.label, source.name)
        return actual
    # Left in place: a verified download replaces it, a failed one leaves it as it was.
    _log("%s: %s does not match the expected digest; fetching again", request.label, source)
    return None


def _download_converting(
    request: Request,
    source: Path,
    raw: Path,
    settings: Settings,
    progress_for: PhaseProgress,
    wanted: Sequence[str],
    *,
    again: bool = False,
) -> Tuple[Dict[str, str], Optional[Path], str, str]:
    """Download the source from the first place that has the pinned bytes: the mirrors in
    order, then upstream (unless offline). A mirror that fails or serves other bytes gets a
    warning naming it, and its bytes never reach the cache (the digest decides). An
    ``oci://`` reference is pulled from the registry it names."""
    from .mirrors import sources
    from .overlap import Overlap

    progress = progress_for("download")
    if request.oci is not None:
        if settings.offline:
            raise DownloadError(
                f"{request.url}: offline mode ({offline_origin(settings)}) forbids pulling it "
                "from its registry, and the cache does not hold it",
                url=request.url,
            )
        return _download_from(
            request.url,
            _registry_pull(request, source, settings, progress, wanted),
            request,
            source,
            raw,
            progress_for,
            again,
        )
    candidates = sources(
        request.url, settings.mirrors, pinned=bool(request.expected), offline=settings.offline
    )
    if not candidates:
        raise DownloadError(
            f"{request.label}: offline mode ({offline_origin(settings)}) and no mirror can "
            f"serve {request.url}"
            + ("" if request.expected else " (an unpinned URL is only ever fetched from upstream)"),
            url=request.url,
        )
    for number, candidate in enumerate(candidates, 1):
        last = number == len(candidates)
        try:
            if candidate.url is None:
                assert candidate.mirror is not None
                overlap = _registry_mirror(
                    request, candidate.mirror, source, settings, progress, wanted
                )
                if overlap is None:
                    raise DownloadError(f"the registry does not hold {request.label}'s file")
                where = candidate.mirror
            else:
                overlap = Overlap.of_url(
                    candidate.url, source, request.expected, settings, progress, wanted
                )
                where = candidate.url
            return _download_from(where, overlap, request, source, raw, progress_for, again)
        except DownloadError as exc:
            if candidate.mirror is None:
                raise
            if last:
                raise DownloadError(
                    f"{request.label}: no mirror had the pinned file and upstream is not "
                    f"contacted (offline); the last mirror, {candidate.mirror}, said: {exc}",
                    url=request.url,
                ) from exc
            _warn(
                "mirror %s failed for %s (%s); trying %s",
                candidate.mirror,
                request.label,
                " ".join(str(exc).split()),
                candidates[number].mirror or "upstream",
            )
    raise AssertionError("unreachable")


def _registry_pull(
    request: Request,
    source: Path,
    settings: Settings,
    progress: Optional[ProgressCallback],
    wanted: Sequence[str],
    resolved: Any = None,
) -> Any:
    """The Overlap pulling ``resolved`` (default: the request's own reference, resolved now
    if it was named by digest) into ``source``, verified by the blob digest and any pin."""
    from .oci import Resolved, fetch_disk
    from .oci import resolve as resolve_reference
    from .overlap import Overlap

    def pull(watch: Any) -> Dict[str, str]:
        target = resolved if resolved is not None else request.oci
        if not isinstance(target, Resolved):
            target = resolve_reference(target, request.arch, settings)
        fetch_disk(target, source, settings, progress, watch, expected=request.expected or None)
        known = dict(request.expected.items())
        if not target.extract and target.sha256:
            known.setdefault("sha256", target.sha256)  # the blob is the file: its digest
        missing = [a for a in wanted if a not in known]
        return {**known, **(file_digests(source, missing) if missing else {})}

    return Overlap(pull)


def _registry_mirror(
    request: Request,
    base: str,
    source: Path,
    settings: Settings,
    progress: Optional[ProgressCallback],
    wanted: Sequence[str],
) -> Any:
    """The Overlap pulling the pinned file from the registry mirror ``base`` (the pin is the
    blob's address; a SHA-512-only pin is found by its push tag), None when it lacks it."""
    from .cachefiles import cache_stem
    from .oci import blob_source_for

    tag = None
    if request.alias is not None and request.snapshot and request.arch:
        tag = cache_stem(request.alias, request.snapshot, request.arch)
    resolved = blob_source_for(
        base,
        request.expected.sha256,
        tag,
        settings,
        sha512=request.expected.sha512,
        arch=request.arch,
    )
    if resolved is None:
        return None
    return _registry_pull(request, source, settings, progress, wanted, resolved)


def _download_from(
    where: str,
    overlap: Any,
    request: Request,
    source: Path,
    raw: Path,
    progress_for: PhaseProgress,
    again: bool = False,
) -> Tuple[Dict[str, str], Optional[Path], str, str]:
    """Run the download ``overlap`` (from ``where``: upstream, a mirror, a registry),
    converting the source as it arrives where that can work (see
    :mod:`pyimagecache.overlap`). Returns the verified digests, the converted scratch file
    (None: convert after the download), the format and the converted disk's content digest
    ("" without a scratch file)."""
    from .cachefiles import temp_sibling
    from .overlap import SourceChanged

    _say_download(request, where, source, again)
    scratch: Optional[Path] = None
    failure: Optional[BaseException] = None
    fmt = content = ""
    try:
        growing = overlap.start()
        if growing is not None:
            try:
                head = growing.pread(formats.SNIFF_SIZE, 0)
            except SourceChanged:
                head = b""  # it started over or failed already: the result says which
            fmt = formats.detect(head) if head else ""
            if formats.is_descriptor(fmt, head):
                fmt = ""  # refused once the download is verified, as any other source
            if fmt in formats.DISK_FORMATS or fmt in formats.CONTAINERS:
                target = scratch = temp_sibling(raw)
                try:
                    content = _convert_growing(request, growing, fmt, target, raw, progress_for)
                    if not content:
                        scratch = None
                except SourceChanged:
                    _remove(target)
                    scratch = None  # the download started over: convert once it is done
                except (ImageCacheError, OSError) as exc:
                    _remove(target)
                    scratch, failure = None, exc  # decided once the download is verified
        digests = overlap.result()
    except BaseException:
        overlap.stop()  # a signal, or the download failed: its partial stays for resume
        if scratch is not None:
            _remove(scratch)
        raise
    finally:
        overlap.close()
    if failure is not None:
        raise _conversion_failed(request, source, raw, fmt, failure) from failure
    return digests, scratch, fmt, content if scratch is not None else ""


def _say_download(request: Request, where: str, source: Path, again: bool) -> None:
    """One line on what the download is, saying only what is true: a local copy, a resume,
    a second fetch, or a real first download (which is the one that takes minutes)."""
    from .cachefiles import partial_of

    part = partial_of(source)
    if where.startswith("file:") or "://" not in where:
        _log("%s: copying %s", request.label, where)
    elif part.exists():
        _log("%s: resuming the download of %s from %s", request.label, where, part)
    elif again:
        _log("%s: downloading %s again", request.label, where)
    else:
        _log("%s: downloading %s (first run, this can take a few minutes)", request.label, where)


def _convert_growing(
    request: Request,
    growing: GrowingFile,
    fmt: str,
    scratch: Path,
    raw: Path,
    progress_for: PhaseProgress,
) -> str:
    """Convert the download still arriving into ``scratch``, returning its content digest;
    "" when it is not worth it (then nothing was written)."""
    from .contentdigest import ContentDigest
    from .converter import ConvertOptions, convert_image
    from .opener import open_image
    from .overlap import worth_overlapping

    progress = progress_for("convert")
    if fmt in formats.DISK_FORMATS:
        img = open_image(growing, fmt, self_contained=True)
        try:
            if not worth_overlapping(growing, fmt, raw, img.virtual_size):
                return ""
            digest = ContentDigest()
            options = ConvertOptions(sync=True, measure=False, progress=progress, digest=digest)
            convert_image(img, scratch, options)
        finally:
            img.close()
        return digest.finish()
    if not worth_overlapping(growing, fmt, raw):
        return ""
    return _unpack_into(request, growing, scratch, raw, progress)


def _convert(
    request: Request, source: Path, raw: Path, fmt: str, progress: Optional[ProgressCallback]
) -> Tuple[Path, str]:
    """The disk converted from the verified ``source`` into a scratch sibling of ``raw``
    (written durably), or ``source`` itself when it is raw already; and its content digest."""
    if fmt == formats.RAW:
        from .contentdigest import file_content_digest

        # The verified download itself is the disk. Its digest takes one more read (from the
        # page cache, just written): raw downloads are rare, and not hashed region by region
        # while they arrive.
        return source, file_content_digest(source)
    from .cachefiles import temp_sibling

    scratch = temp_sibling(raw)
    try:
        if fmt in formats.DISK_FORMATS:
            content = _convert_disk(source, scratch, progress)
        else:
            content = _unpack_into(request, source, scratch, raw, progress)
    except BaseException:
        _remove(scratch)
        raise
    return scratch, content


def _convert_disk(source: Path, dst: Path, progress: Optional[ProgressCallback]) -> str:
    """Convert a downloaded disk image, which must be self-contained (no backing file, no
    external data file, no extents elsewhere), durably to ``dst``; its content digest."""
    from .contentdigest import ContentDigest
    from .converter import ConvertOptions, convert_opened
    from .opener import open_image

    digest = ContentDigest()
    options = ConvertOptions(sync=True, progress=progress, digest=digest)
    convert_opened(lambda path: open_image(path, self_contained=True), source, dst, options)
    return digest.finish()


def _unpack_into(
    request: Request,
    source: Union[Path, GrowingFile],
    dst: Path,
    raw: Path,
    progress: Optional[ProgressCallback],
) -> str:
    """Unpack the container ``source`` into a scratch sibling of ``raw``, then convert the disk
    inside to ``dst`` (durably), or move it there when it is raw already; its content digest.
    The unpacker refuses a payload it cannot hand on (another container, an unconverted
    format); a raw payload that is evidently no disk is refused here."""
    from .cachefiles import temp_sibling
    from .contentdigest import ContentDigest
    from .unpack import unpack

    inner = temp_sibling(raw)
    digest = ContentDigest()
    try:
        payload = unpack(source, inner, progress=progress, digest=digest)
        name = url_basename(request.url)
        inside = formats.claimed(name)[1]
        _check_disk(request, inner, payload, inside if inside != name else "")
        if payload in formats.DISK_FORMATS:
            return _convert_disk(inner, dst, progress)
        os.replace(inner, dst)
        return digest.finish()
    finally:
        _remove(inner)


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
