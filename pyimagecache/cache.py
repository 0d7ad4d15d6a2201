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
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from . import formats
from ._lock import FileLock, OnWait
from ._log import info as _log
from ._log import warning as _warn
from ._progress import ProgressCallback
from .cachedir import resolve_cache_dir
from .cachefiles import EntryNames, alias_names, is_oci, is_url, url_names
from .catalog import CatalogSource, ImageInfo, lookup, resolve_catalog, snapshot_of, suggest
from .errors import (
    CatalogError,
    ConversionError,
    DownloadError,
    ImageCacheError,
    ImageFormatError,
    MissingExtraError,
    UnknownImageError,
    UnsupportedFormatError,
)
from .hashing import Expected, file_digests
from .settings import Settings
from .sidecar import read_sidecar, write_sidecar
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
    alias: Optional[str] = None
    snapshot: Optional[str] = None
    arch: Optional[str] = None
    info: Optional[ImageInfo] = None  # the catalog entry, for an alias
    fallback_from: Optional[str] = None  # the pinned snapshot this one stands in for
    oci: Any = None  # for an oci:// reference: what the registry resolved it to (Resolved)

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
        return Request(url=url_or_alias, expected=given, names=url_names(url_or_alias))
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
    >>> image = bytes(512) + b"boot" + bytes(1 << 20)
    >>> _ = (tmp / "disk.img").write_bytes(image)
    >>> disk = ensure((tmp / "disk.img").as_uri(), tmp / "cache",
    ...               sha256=hashlib.sha256(image).hexdigest())
    >>> disk.read_bytes() == image, disk.suffix
    (True, '.raw')
    """
    return ensure_phased(
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
    )


def ensure_phased(
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
) -> Path:
    """ensure() with one progress callback per phase ("download", "convert"), for the CLI;
    ``on_wait(pid)`` is called once if another process holds the entry's lock."""
    directory = resolve_cache_dir(cache_dir)
    if is_oci(url_or_alias):
        settings = _settings(settings, overrides)  # a tag is resolved at the registry first
        request = _resolve_oci(url_or_alias, arch, settings)
        raw = directory / request.names.raw
        if raw.exists():
            return raw
        return build(
            request, directory, progress_for, settings, keep_source=keep_source, on_wait=on_wait
        )
    request = resolve(url_or_alias, arch=arch, sha256=sha256, sha512=sha512, catalog=catalog)
    raw = directory / request.names.raw
    if raw.exists() and _still_valid(request, raw):
        return raw
    if request.alias is not None:
        stand_in = _existing_fallback(request, directory)  # the pin aged out before
        if stand_in is not None:
            return stand_in
    settings = _settings(settings, overrides)
    try:
        return build(
            request, directory, progress_for, settings, keep_source=keep_source, on_wait=on_wait
        )
    except DownloadError as exc:
        if request.alias is None or exc.status not in AGED_OUT or exc.url != request.url:
            raise
        return _after_aged_out_pin(
            request, directory, progress_for, settings, exc, keep_source=keep_source
        )


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
    _warn(
        "%s: pinned snapshot %s is gone upstream; using the newer %s, verified against %s%s",
        request.alias,
        request.snapshot,
        pin.snapshot,
        pin.source,
        "" if pin.verified_signature else " (its signature not checked: no keyring given)",
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


def _still_valid(request: Request, raw: Path) -> bool:
    # Alias entries are named by their pinned snapshot, so existence is enough. A URL entry
    # fetched without a checksum must match one given now, per its sidecar (no re-hash).
    if request.alias is not None or not request.expected:
        return True
    recorded = read_sidecar(raw)
    return request.expected.matches({k: str(recorded.get(k)) for k in request.expected.algorithms})


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
    names = request.names
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / names.raw
    source = directory / names.source
    with FileLock(directory / names.lock, on_wait=on_wait):
        if raw.exists():
            if _still_valid(request, raw):
                return raw  # another process or thread finished it while we waited
            _log("%s does not match the digest given; fetching again", raw)
            _remove(raw, directory / names.sidecar, source)
        wanted = tuple(dict.fromkeys((*request.expected.algorithms, "sha256")))
        digests = _reuse_source(request, source, wanted)
        scratch: Optional[Path] = None
        fmt = ""
        if digests is None:
            digests, scratch, fmt = _download_converting(
                request, source, raw, settings, progress_for, wanted
            )
        if scratch is not None:
            from ._atomic import publish

            publish(scratch, raw)  # converted while downloading, and now verified
        else:
            fmt, head = formats.sniff_file(source)
            try:
                what = f"{request.label} ({source.name})"
                formats.check_convertible(fmt, what)
                formats.check_self_contained(fmt, head, what)
                _convert(source, raw, fmt, progress_for("convert"))
            except (MissingExtraError, ImageFormatError, ConversionError, OSError) as exc:
                raise _conversion_failed(request, source, raw, fmt, exc) from exc
        if fmt != formats.RAW and not keep_source:
            _remove(source)
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
                "size": raw.stat().st_size,
                "fallback_from": request.fallback_from,
            },
        )
    return raw


def _conversion_failed(
    request: Request, source: Path, raw: Path, fmt: str, exc: BaseException
) -> BaseException:
    """The error to raise for a failed conversion, after deciding what to keep: a source at
    fault is removed (no retry can help), any other failure keeps the verified download."""
    _remove(raw)
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
    _log("%s: %s does not match the expected digest; fetching again", request.label, source)
    _remove(source)
    return None


def _download_converting(
    request: Request,
    source: Path,
    raw: Path,
    settings: Settings,
    progress_for: PhaseProgress,
    wanted: Sequence[str],
) -> Tuple[Dict[str, str], Optional[Path], str]:
    """Download the source from the first place that has the pinned bytes: the mirrors in
    order, then upstream (unless offline). A mirror that fails or serves other bytes gets a
    warning naming it, and its bytes never reach the cache (the digest decides). An
    ``oci://`` reference is pulled from the registry it names."""
    from .mirrors import sources
    from .overlap import Overlap

    progress = progress_for("download")
    if request.oci is not None:
        return _download_from(
            request.url,
            _registry_pull(request, source, settings, progress, wanted),
            request,
            source,
            raw,
            progress_for,
        )
    candidates = sources(
        request.url, settings.mirrors, pinned=bool(request.expected), offline=settings.offline
    )
    if not candidates:
        raise DownloadError(
            f"{request.label}: offline (PYIMAGECACHE_OFFLINE) and no mirror can serve "
            f"{request.url}"
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
            return _download_from(where, overlap, request, source, raw, progress_for)
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
) -> Tuple[Dict[str, str], Optional[Path], str]:
    """Run the download ``overlap`` (from ``where``: upstream, a mirror, a registry),
    converting the source as it arrives where that can work (see
    :mod:`pyimagecache.overlap`). Returns the verified digests, the converted scratch file
    (None: convert after the download) and the format."""
    from .cachefiles import temp_sibling
    from .overlap import SourceChanged

    _log("%s: downloading %s (first run, this can take a few minutes)", request.label, where)
    scratch: Optional[Path] = None
    failure: Optional[BaseException] = None
    fmt = ""
    try:
        growing = overlap.start()
        if growing is not None:
            head = growing.pread(formats.SNIFF_SIZE, 0)
            fmt = formats.detect(head)
            if formats.is_descriptor(fmt, head):
                fmt = ""  # refused once the download is verified, as any other source
            if fmt in formats.DISK_FORMATS or fmt in formats.CONTAINERS:
                target = scratch = temp_sibling(raw)
                try:
                    if not _convert_growing(growing, fmt, target, raw, progress_for):
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
    return digests, scratch, fmt


def _convert_growing(
    growing: GrowingFile, fmt: str, scratch: Path, raw: Path, progress_for: PhaseProgress
) -> bool:
    """Convert the download still arriving into ``scratch``; False when it is not worth it
    (then nothing was written)."""
    from .converter import ConvertOptions, convert_image
    from .opener import open_image
    from .overlap import worth_overlapping

    progress = progress_for("convert")
    if fmt in formats.DISK_FORMATS:
        img = open_image(growing, fmt)
        try:
            if not worth_overlapping(growing, fmt, raw, img.virtual_size):
                return False
            options = ConvertOptions(sync=True, measure=False, progress=progress)
            convert_image(img, scratch, options)
        finally:
            img.close()
        return True
    if not worth_overlapping(growing, fmt, raw):
        return False
    _unpack_into(growing, scratch, raw, progress, os.replace)
    return True


def _convert(source: Path, raw: Path, fmt: str, progress: Optional[ProgressCallback]) -> None:
    from ._atomic import publish

    if fmt == formats.RAW:
        publish(source, raw)  # the verified download itself is the disk
        return
    from .converter import convert

    if fmt in formats.DISK_FORMATS:
        convert(source, raw, progress=progress, sync=True)
        return
    _unpack_into(source, raw, raw, progress, publish)


def _unpack_into(
    source: Union[Path, GrowingFile],
    dst: Path,
    raw: Path,
    progress: Optional[ProgressCallback],
    place: Callable[[Path, Path], None],
) -> None:
    """Unpack the container ``source`` into a scratch sibling of ``raw``, then convert the disk
    inside to ``dst`` (durably), or ``place`` it there when it is raw already. The unpacker
    refuses a payload it cannot hand on (another container, an unconverted format)."""
    from .cachefiles import temp_sibling
    from .converter import convert
    from .unpack import unpack

    inner = temp_sibling(raw)
    try:
        payload = unpack(source, inner, progress=progress)
        if payload in formats.DISK_FORMATS:
            convert(inner, dst, progress=progress, sync=True)
        else:
            place(inner, dst)
    finally:
        _remove(inner)


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
