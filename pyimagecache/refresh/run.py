"""``catalog refresh``: bump every alias to its newest complete upstream snapshot.

Humans own the keys (alias, distro, version, codename) and their order; the refresher owns the
values snapshot, per-arch url and sha256, and bumped_at. All aliases are resolved first; if any
fails, every failure is reported and nothing is written, so a catalog is never half-bumped.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from ..catalog import INFO_FIELDS, encode_document, parse_catalog, read_document, suggest
from ..errors import CatalogError, ImageCacheError, RefreshError
from .debian import DEBIAN_ROOT, resolve_debian
from .pins import Pin
from .ubuntu import UBUNTU_ROOT, resolve_ubuntu
from .upstream import Log, ProgressFor, Upstream
from .writer import replace_document


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did: the aliases it bumped and the document before and after."""

    path: Path
    changed: List[str]
    old: bytes
    new: bytes
    written: bool


def embedded_catalog_path() -> Optional[Path]:
    """The package's catalog.json when it is a real file (a development checkout), else None."""
    from importlib.resources import files

    resource = files("pyimagecache").joinpath("catalog.json")
    return resource if isinstance(resource, Path) and resource.is_file() else None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _root(url: str, option: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefreshError(f"{option} {url!r} must be an http(s):// URL")
    return url if url.endswith("/") else url + "/"


def _set(entry: Dict[str, Any], key: str, value: Any) -> None:
    """Set ``entry[key]``; a new key goes where the schema order puts it, not at the end."""
    if key in entry:
        entry[key] = value
        return
    rank = {k: i for i, k in enumerate(INFO_FIELDS)}
    items = list(entry.items())
    at = next((i for i, (k, _) in enumerate(items) if rank.get(k, -1) > rank[key]), len(items))
    items.insert(at, (key, value))
    entry.clear()
    entry.update(items)


def _apply(entry: Dict[str, Any], pin: Pin, today: str) -> None:
    _set(entry, "snapshot", pin.snapshot)
    _set(entry, "bumped_at", today)
    arch = entry.get("arch")
    if not isinstance(arch, dict):
        arch = {}
        _set(entry, "arch", arch)
    for key, image in pin.arch.items():
        slot = arch.get(key)
        if isinstance(slot, dict):
            slot["url"], slot["sha256"] = image.url, image.sha256
        else:
            arch[key] = {"url": image.url, "sha256": image.sha256}


def refresh_catalog(
    path: Path,
    *,
    aliases: Optional[Sequence[str]] = None,
    dry_run: bool = False,
    keyring: Optional[Path] = None,
    debian_root: str = DEBIAN_ROOT,
    ubuntu_root: str = UBUNTU_ROOT,
    embedded: Optional[bool] = None,
    today: Optional[str] = None,
    log: Log = _stderr,
    progress_for: Optional[ProgressFor] = None,
    network: Optional[Dict[str, Any]] = None,
) -> RefreshResult:
    """Bump the catalog at ``path`` to the newest complete upstream snapshots.

    ``embedded`` (default: whether ``path`` is the package's own catalog.json) demands https
    pins. ``network`` passes timeout=/retries= to the downloader. Raises :class:`RefreshError`
    listing every alias that failed; then the file is untouched.

    >>> refresh_catalog(Path("pyimagecache/catalog.json"))  # doctest: +SKIP
    RefreshResult(path=..., changed=['debian-12'], ...)
    """
    path = Path(path)
    roots = {
        "debian": _root(debian_root, "--debian-root"),
        "ubuntu": _root(ubuntu_root, "--ubuntu-root"),
    }
    raw, doc = read_document(path)
    if not isinstance(doc, dict):
        raise CatalogError(f"catalog {path}: top level must be an object of aliases")
    selected = list(doc) if not aliases else list(dict.fromkeys(aliases))
    for alias in selected:
        if alias not in doc:
            hint = suggest(alias, doc)
            maybe = f" (did you mean {', '.join(hint)}?)" if hint else ""
            raise RefreshError(f"unknown alias {alias!r} in {path}{maybe}")
    if embedded is None:
        own = embedded_catalog_path()
        embedded = own is not None and own.resolve() == path.resolve()
    if today is None:
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    upstream = Upstream(keyring=keyring, log=log, progress_for=progress_for, network=network or {})

    failures: List[str] = []
    changed: List[str] = []
    for alias in selected:
        entry = doc[alias]
        try:
            if not isinstance(entry, dict):
                raise RefreshError(f"{alias}: entry must be an object")
            distro = entry.get("distro")
            if distro == "debian":
                pin = resolve_debian(alias, entry, roots["debian"], upstream)
            elif distro == "ubuntu":
                pin = resolve_ubuntu(alias, entry, roots["ubuntu"], upstream)
            else:
                raise RefreshError(f"{alias}: unknown distro {distro!r} (known: debian, ubuntu)")
        except ImageCacheError as exc:
            message = str(exc) if str(exc).startswith(alias) else f"{alias}: {exc}"
            failures.append(message)
            log(f"failed {message}")
            continue
        if pin is None:
            log(f"resolved {alias} -> {entry.get('snapshot')} (unchanged)")
            continue
        previous = entry.get("snapshot")
        if pin.snapshot == previous:
            log(f"resolved {alias} -> {pin.snapshot} (unchanged)")
            continue
        _apply(entry, pin, today)
        changed.append(alias)
        log(f"resolved {alias} -> {pin.snapshot} (was {previous})")

    if failures:
        raise RefreshError(
            f"catalog refresh failed for {len(failures)} alias(es), {path} not written: "
            + "; ".join(failures)
        )
    if not changed:
        return RefreshResult(path, [], raw, raw, written=False)
    new = encode_document(doc)
    try:
        parse_catalog(doc, embedded=embedded)
    except CatalogError as exc:
        raise RefreshError(
            f"refreshed catalog would be invalid, {path} not written: {exc}"
        ) from None
    if not dry_run:
        replace_document(path, raw, new)
    return RefreshResult(path, changed, raw, new, written=not dry_run)
