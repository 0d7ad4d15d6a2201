"""``catalog check``: the rules a pinned catalog must satisfy, all problems reported at once.

Beyond what the runtime parser insists on, a pin must be reproducible and refreshable:

* a family the refresher knows (:data:`KNOWN_DISTROS`), with the fields its layout needs
  (Debian's codename);
* every snapshot (the alias's and any arch's own) named by the family's rule
  (:mod:`.snapshots`), and an arch's own snapshot only where it differs from the alias's;
* every URL https, the family's image URL (its layout's one regex: the right directory for
  the release, the arch's spelling, the snapshot in it, the variant kept), and through no
  moving pointer (``latest``, ``current``, ``daily``, ``latest-stable``, ``-latest.`` file
  names, Ubuntu's ``release/``...), except the one a family has to use because upstream has
  no other https location: FreeBSD's ``<X.Y>-RELEASE/<arch>/Latest/`` (see
  :mod:`.freebsd` for why that is safe) and Tumbleweed's ``tumbleweed/`` (the snapshot is in
  the file name, see :mod:`.opensuse_tumbleweed`);
* arches: amd64 for every alias; arm64 too where the family builds it with every release
  (Debian, Ubuntu, Fedora, CentOS Stream, AlmaLinux and Kitten, Rocky, Oracle Linux, Alpine,
  FreeBSD, CirrOS), optional where upstream builds it apart (openSUSE Leap's own build
  counter, Tumbleweed's ``ports/aarch64/`` and Amazon Linux's ``kvm-arm64/`` tree, for which
  not every release has a pin to be had), never for
  Arch Linux (upstream builds x86_64 only, so any arm64 image would be third-party); other
  arches only where the family publishes them;
* a SHA-256 or SHA-512 (or both) of canonical lowercase hex, and no URL pinned twice;
* names that make safe cache file names.
"""

from __future__ import annotations

import datetime
import re
from typing import Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from ..catalog import ARCH_FIELDS, ARCHES, INFO_FIELDS, cache_stem, parse_catalog
from ..errors import CatalogError
from ..hashing import ALGORITHMS, HEX_DIGITS, is_digest
from .families import FAMILIES
from .layout import ARM64_REQUIRED, Context, Layout, dirname, moving_segments

KNOWN_DISTROS: Mapping[str, Layout] = FAMILIES
#: Every alias must have an image for these; arm64 as its family's rule says (above).
REQUIRED_ARCHES = ("amd64",)
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def required_arches(layout: Optional[Layout]) -> List[str]:
    """The arches an alias of ``layout``'s family must list."""
    if layout is not None and layout.arm64 == ARM64_REQUIRED:
        return [*REQUIRED_ARCHES, "arm64"]
    return list(REQUIRED_ARCHES)


def _check_url(
    where: str,
    url: object,
    layout: Optional[Layout],
    entry: Mapping[str, object],
    arch: str,
    snapshot: str,
) -> List[str]:
    if not isinstance(url, str) or not url:
        return [f"{where}: 'url' must be a non-empty string"]
    parts = urlsplit(url)
    problems = []
    if parts.scheme != "https" or not parts.hostname:
        problems.append(f"{where}: url {url!r} must be https://host/...")
    moving = moving_segments(layout, parts.path)
    if moving:
        problems.append(f"{where}: url {url!r} goes through the moving pointer /{moving[0]}/")
    if not parts.path.split("/")[-1]:
        problems.append(f"{where}: url {url!r} names a directory, not a file")
    if layout is None or arch not in layout.arches:
        return problems
    m = layout.match(url)
    if m is None:
        return problems + [
            f"{where}: url {url!r} does not have the shape of {layout.title} image URLs "
            f"({layout.shape})"
        ]
    got = layout.url_snapshot(m)
    if snapshot and got != snapshot:
        problems.append(
            f"{where}: url {url!r} is not inside the snapshot {snapshot!r} (it is {got!r}'s)"
        )
    if m.group("arch") != layout.arches[arch]:
        problems.append(
            f"{where}: url {url!r} is the {m.group('arch')} image, not "
            f"{layout.arches[arch]} ({arch})"
        )
    for field in ("version", "codename"):
        value = entry.get(field)
        if field in m.re.groupindex and value and m.group(field) != value:
            problems.append(f"{where}: url {url!r} is {field} {m.group(field)!r}, not {value!r}")
    ctx = Context(
        "", str(entry.get("version") or ""), m.groupdict().get("codename") or "", m.group("root")
    )
    directory = layout.image_dir(ctx, got, arch)
    if not problems and directory != dirname(url):
        problems.append(f"{where}: url {url!r} is not where {layout.title} keeps it ({directory})")
    return problems


def _check_snapshot(where: str, value: object, layout: Optional[Layout]) -> List[str]:
    if not isinstance(value, str) or not value:
        return [f"{where}: 'snapshot' must be a non-empty string"]
    if layout is not None and layout.rule(value) is None:
        return [
            f"{where}: snapshot {value!r} is not a {layout.distro} snapshot name "
            f"({layout.rule.shape})"
        ]
    return []


def _check_arch(
    alias: str, key: str, image: object, entry: Mapping[str, object], layout: Optional[Layout]
) -> List[str]:
    at = f"alias {alias!r} arch {key!r}"
    if key not in ARCHES:
        return [f"{at}: unknown arch (known: {', '.join(ARCHES)})"]
    problems = []
    if layout is not None and key not in layout.arches:
        published = ", ".join(layout.arches)
        problems.append(f"{at}: {layout.title} publishes no {key} image (only {published})")
    if not isinstance(image, dict):
        return problems + [f"{at}: must be an object with url and sha256 or sha512"]
    problems += [f"{at}: unknown field {k!r}" for k in image if k not in ARCH_FIELDS]
    alias_snapshot = entry.get("snapshot") if isinstance(entry.get("snapshot"), str) else ""
    snapshot = str(alias_snapshot or "")
    if "snapshot" in image:
        own = _check_snapshot(at, image["snapshot"], layout)
        problems += own
        if not own and image["snapshot"] == alias_snapshot:
            problems.append(f"{at}: snapshot {alias_snapshot!r} is the alias's own; drop it")
        if not own:
            snapshot = str(image["snapshot"])
    stem = cache_stem(alias, snapshot, key)
    if not _SAFE_STEM.fullmatch(stem):
        problems.append(f"{at}: cache name {stem!r} is not a safe file name")
    problems += _check_url(at, image.get("url"), layout, entry, key, snapshot)
    pinned = [name for name in ALGORITHMS if name in image]
    if not pinned:
        problems.append(f"{at}: needs a sha256 or sha512 digest (or both)")
    for name in pinned:
        if not is_digest(image[name], name):
            problems.append(
                f"{at}: {name} must be {HEX_DIGITS[name]} lowercase hex digits, got {image[name]!r}"
            )
    return problems


def _check_alias(alias: str, entry: object) -> List[str]:
    where = f"alias {alias!r}"
    if not isinstance(entry, dict):
        return [f"{where}: must be an object, got {type(entry).__name__}"]
    problems = [f"{where}: unknown field {k!r}" for k in entry if k not in INFO_FIELDS]
    distro = entry.get("distro")
    layout = KNOWN_DISTROS.get(distro) if isinstance(distro, str) else None
    if layout is None:
        known = ", ".join(sorted(KNOWN_DISTROS))
        problems.append(f"{where}: unknown distro {distro!r} (known: {known})")
    version = entry.get("version")
    if not isinstance(version, str) or not version:
        problems.append(f"{where}: 'version' must be a non-empty string")
    codename = entry.get("codename")
    if (
        layout is not None
        and layout.needs_codename
        and (not isinstance(codename, str) or not codename)
    ):
        problems.append(
            f"{where}: a {layout.title} alias needs a 'codename' (its upstream directory)"
        )
    elif codename is not None and not isinstance(codename, str):
        problems.append(f"{where}: 'codename' must be a string")
    problems += _check_snapshot(where, entry.get("snapshot"), layout)
    bumped_at = entry.get("bumped_at")
    if bumped_at is not None:
        try:
            datetime.date.fromisoformat(str(bumped_at))
            if not isinstance(bumped_at, str):
                raise ValueError
        except ValueError:
            problems.append(f"{where}: bumped_at {bumped_at!r} is not a YYYY-MM-DD date")
    arch = entry.get("arch")
    required = required_arches(layout)
    if not isinstance(arch, dict):
        return problems + [f"{where}: 'arch' must be an object with {' and '.join(required)}"]
    for key in required:
        if key not in arch:
            problems.append(f"{where}: no {key} image")
    for key, image in arch.items():
        problems += _check_arch(alias, key, image, entry, layout)
    return problems


def check_document(doc: object) -> List[str]:
    """Every problem with a decoded catalog, one line each; empty when it passes.

    >>> check_document({"x": {"distro": "arch"}})[0][:34]
    "alias 'x': unknown distro 'arch' ("
    """
    if not isinstance(doc, dict):
        return [f"top level must be an object of aliases, got {type(doc).__name__}"]
    if not doc:
        return ["no aliases"]
    problems: List[str] = []
    seen: Dict[str, str] = {}
    for alias, entry in doc.items():
        problems += _check_alias(alias, entry)
        arch = entry.get("arch") if isinstance(entry, dict) else None
        for key, image in arch.items() if isinstance(arch, Mapping) else ():
            url = image.get("url") if isinstance(image, dict) else None
            if isinstance(url, str):
                if url in seen:
                    problems.append(f"alias {alias!r} arch {key!r}: same url as {seen[url]}")
                seen.setdefault(url, f"alias {alias!r} arch {key!r}")
    if not problems:
        try:
            parse_catalog(doc, embedded=True)  # whatever the runtime would still refuse
        except CatalogError as exc:
            problems.append(str(exc))
    return problems
