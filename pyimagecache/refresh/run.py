"""``catalog refresh``: bump every alias to its newest complete upstream snapshot.

Humans own the keys (alias, distro, version, codename) and their order; the refresher owns the
values snapshot, per-arch url, digests and snapshot, and bumped_at. Each alias is resolved by
its family's layout (:mod:`.families`); the digests pinned are the ones upstream's checksum
file publishes (SHA-512 for Debian and Alpine, SHA-256 elsewhere), so no image is downloaded.
All aliases are resolved first; if any fails, every failure is reported and nothing is written,
so a catalog is never half-bumped.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ..catalog import (
    ARCH_FIELDS,
    INFO_FIELDS,
    Provenance,
    encode_document,
    parse_catalog,
    provenance_document,
    read_document,
    suggest,
)
from ..errors import CatalogError, DigestError, ImageCacheError, RefreshError
from ..hashing import ALGORITHMS, Expected
from .families import FAMILIES
from .layout import ARM64_REQUIRED, Layout
from .pins import ArchPin
from .resolve import Bump, context, resolve_alias
from .signatures import SignaturePolicy, require_gpgv, user_keyring
from .upstream import Log, Upstream
from .writer import replace_document

#: The upstream index roots (``--debian-root`` and ``--ubuntu-root`` are the old spellings).
DEBIAN_ROOT = FAMILIES["debian"].root
UBUNTU_ROOT = FAMILIES["ubuntu"].root


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


def parse_root(spec: str) -> Tuple[str, str]:
    """``FAMILY=URL`` (``--root``) as (family, root URL).

    >>> parse_root("debian=https://mirror.example/debian-cloud")
    ('debian', 'https://mirror.example/debian-cloud/')
    """
    family, sep, url = spec.partition("=")
    if not sep or family not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise RefreshError(f"--root {spec!r}: expected FAMILY=URL with FAMILY one of {known}")
    return family, _root(url, f"--root {family}=")


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


def _pinned(layout: Layout, entry: Mapping[str, Any]) -> Dict[str, Tuple[str, Expected]]:
    """arch -> (effective snapshot, pinned digests) of a document entry; an entry without
    arches gets what ``catalog check`` requires of the family."""
    snapshot = entry.get("snapshot")
    snapshot = snapshot if isinstance(snapshot, str) else ""
    arch = entry.get("arch")
    if not isinstance(arch, dict) or not arch:
        wanted = ["amd64"] + (["arm64"] if layout.arm64 == ARM64_REQUIRED else [])
        return {key: (snapshot, Expected()) for key in wanted}
    out: Dict[str, Tuple[str, Expected]] = {}
    for key, slot in arch.items():
        if not isinstance(slot, dict):
            raise RefreshError(f"arch {key!r} must be an object")
        own = slot.get("snapshot")
        try:
            digests = Expected.parse(*(slot.get(a) for a in ALGORITHMS), what=f"arch {key!r}")
        except DigestError as exc:
            raise RefreshError(str(exc)) from None
        out[key] = (own if isinstance(own, str) and own else snapshot, digests)
    return out


def _urls(entry: Mapping[str, Any]) -> Dict[str, str]:
    arch = entry.get("arch")
    if not isinstance(arch, dict):
        return {}
    return {k: str(v.get("url", "")) for k, v in arch.items() if isinstance(v, dict)}


def provenance_of(pin: ArchPin, today: str) -> Dict[str, str]:
    """The provenance record of a pin a refresh moved, as catalog.json spells it: the checksum
    file it was read from, its format, what its signature proved, and the day.

    >>> provenance_of(ArchPin("https://e.org/a.img", Expected("ab" * 32), source="https://e.org/S",
    ...                       fmt="coreutils"), "2026-12-07")["signature"]
    'unsigned'
    """
    return provenance_document(
        Provenance(
            record=pin.source,
            format=pin.fmt,
            signature=pin.signature,
            key=pin.key if pin.signature == "verified" else "",
            date=today,
        )
    )


def _apply(
    entry: Dict[str, Any], bump: Bump, pinned: Mapping[str, Tuple[str, Expected]], today: str
) -> None:
    """Write ``bump`` into ``entry``: the alias's snapshot, then every arch's slot (a moved
    arch gets its url, exactly the digests upstream published and a provenance record saying
    where from; every arch keeps its own snapshot only where it differs from the alias's)."""
    _set(entry, "snapshot", bump.snapshot)
    _set(entry, "bumped_at", today)
    arch = entry.get("arch")
    if not isinstance(arch, dict):
        arch = {}
        _set(entry, "arch", arch)
    for key in dict.fromkeys([*pinned, *bump.arch]):
        slot = dict(arch.get(key) or {})
        own = pinned[key][0] if key in pinned else bump.snapshot
        pin = bump.arch.get(key)
        if pin is not None:
            own = pin.snapshot
            slot = {
                "url": pin.url,
                **dict(pin.expected.items()),
                "provenance": provenance_of(pin, today),
            }
        slot.pop("snapshot", None)
        if own and own != bump.snapshot:
            slot["snapshot"] = own
        arch[key] = {f: slot[f] for f in ARCH_FIELDS if f in slot}


def refresh_catalog(
    path: Path,
    *,
    aliases: Optional[Sequence[str]] = None,
    dry_run: bool = False,
    keyring: Optional[Path] = None,
    verify_signatures: bool = True,
    require_signatures: bool = False,
    roots: Optional[Mapping[str, str]] = None,
    debian_root: Optional[str] = None,
    ubuntu_root: Optional[str] = None,
    embedded: Optional[bool] = None,
    today: Optional[str] = None,
    log: Log = _stderr,
    network: Optional[Dict[str, Any]] = None,
) -> RefreshResult:
    """Bump the catalog at ``path`` to the newest complete upstream snapshots.

    ``roots`` maps a family (``distro``) to the upstream root to resolve it against (a
    mirror, or a test's fake); ``debian_root``/``ubuntu_root`` are the older spellings of two
    of them. ``embedded`` (default: whether ``path`` is the package's own catalog.json)
    demands https pins. ``network`` passes timeout=/retries= to the downloader. Raises
    :class:`RefreshError` listing every alias that failed; then the file is untouched.

    Signatures: checksum files of the families that sign them are verified with gpgv against
    the keys shipped for that family and release, or against ``keyring`` instead; a snapshot
    whose signature is missing or bad is skipped, with a line saying why.
    ``verify_signatures=False`` checks none (the log and the provenance records say
    ``not-checked``); ``require_signatures`` fails the aliases of families that sign nothing.
    Every pin moved gets a provenance record (the checksum file, its format, its signature's
    state and key, ``today``).

    >>> refresh_catalog(Path("pyimagecache/catalog.json"))  # doctest: +SKIP
    RefreshResult(path=..., changed=['debian-12'], ...)
    """
    path = Path(path)
    chosen = {name: layout.root for name, layout in FAMILIES.items()}
    for name, url in (roots or {}).items():
        if name not in FAMILIES:
            raise RefreshError(f"unknown family {name!r} (known: {', '.join(FAMILIES)})")
        chosen[name] = _root(url, f"--root {name}=")
    for name, old, option in (
        ("debian", debian_root, "--debian-root"),
        ("ubuntu", ubuntu_root, "--ubuntu-root"),
    ):
        if old is not None:
            chosen[name] = _root(old, option)
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
    policy = SignaturePolicy(
        keyring=None if keyring is None else Path(keyring),
        verify=verify_signatures,
        require=require_signatures,
    )
    signing = sorted(
        {
            str(doc[a].get("distro"))
            for a in selected
            if isinstance(doc[a], dict)
            and str(doc[a].get("distro")) in FAMILIES
            and FAMILIES[str(doc[a].get("distro"))].signed
        }
    )
    if policy.verify and signing:  # one error before any request, not one per alias
        require_gpgv(f"the signatures of {', '.join(signing)} checksum files cannot be verified")
        if policy.keyring is not None:
            user_keyring(policy.keyring)  # unreadable or malformed: said once, now
    log(f"signatures: {policy.describe()}")
    upstream = Upstream(policy=policy, log=log, network=network or {})

    failures: List[str] = []
    changed: List[str] = []
    for alias in selected:
        entry = doc[alias]
        try:
            if not isinstance(entry, dict):
                raise RefreshError(f"{alias}: entry must be an object")
            layout = FAMILIES.get(str(entry.get("distro")))
            if layout is None:
                known = ", ".join(FAMILIES)
                raise RefreshError(f"unknown distro {entry.get('distro')!r} (known: {known})")
            pinned = _pinned(layout, entry)
            ctx = context(
                layout,
                alias,
                str(entry.get("version") or ""),
                str(entry.get("codename") or ""),
                chosen[layout.distro],
                _urls(entry),
            )
            previous = str(entry.get("snapshot") or "")
            bump = resolve_alias(layout, upstream, ctx, pinned, previous)
        except ImageCacheError as exc:
            message = str(exc) if str(exc).startswith(alias) else f"{alias}: {exc}"
            failures.append(message)
            log(f"failed {message}")
            continue
        if bump is None:
            log(f"resolved {alias} -> {previous} (unchanged)")
            continue
        _apply(entry, bump, pinned, today)
        changed.append(alias)
        if bump.snapshot == previous:
            log(f"resolved {alias} -> {previous} (kept; other arches moved)")
        else:
            log(f"resolved {alias} -> {bump.snapshot} (was {previous})")

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
