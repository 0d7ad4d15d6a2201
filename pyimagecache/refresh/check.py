"""``catalog check``: the rules a pinned catalog must satisfy, all problems reported at once.

Beyond what the runtime parser insists on, a pin must be reproducible: an https URL inside the
pinned snapshot's directory (never a moving ``latest``/``release``/``current`` pointer), a
SHA-256 of 64 lowercase hex digits, both architectures, a distro the refresher knows (with the
codename Debian's layout needs) and names that make safe cache file names.
"""

from __future__ import annotations

import datetime
import re
from typing import Dict, List, Mapping
from urllib.parse import urlsplit

from ..catalog import ARCH_FIELDS, ARCHES, INFO_FIELDS, cache_stem, parse_catalog
from ..errors import CatalogError
from ..hashing import ALGORITHMS, HEX_DIGITS, is_digest
from .snapshots import debian_key, ubuntu_key

KNOWN_DISTROS = {"debian": debian_key, "ubuntu": ubuntu_key}
#: Directory names upstream re-points at each build: a URL through them is not a pin.
MOVING_POINTERS = frozenset({"latest", "release", "current"})
#: Every alias must have an image for these; the others (riscv64, ...) where upstream has them.
REQUIRED_ARCHES = ("amd64", "arm64")
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _check_url(where: str, url: object, snapshot: str) -> List[str]:
    if not isinstance(url, str) or not url:
        return [f"{where}: 'url' must be a non-empty string"]
    parts = urlsplit(url)
    problems = []
    if parts.scheme != "https" or not parts.hostname:
        problems.append(f"{where}: url {url!r} must be https://host/...")
    segments = parts.path.split("/")
    if snapshot and snapshot not in segments[:-1]:
        problems.append(f"{where}: url {url!r} is not inside the snapshot directory {snapshot!r}")
    moving = sorted(MOVING_POINTERS.intersection(segments[:-1]))
    if moving:
        problems.append(f"{where}: url {url!r} goes through the moving pointer /{moving[0]}/")
    if not segments[-1]:
        problems.append(f"{where}: url {url!r} names a directory, not a file")
    return problems


def _check_alias(alias: str, entry: object) -> List[str]:
    where = f"alias {alias!r}"
    if not isinstance(entry, dict):
        return [f"{where}: must be an object, got {type(entry).__name__}"]
    problems = [f"{where}: unknown field {k!r}" for k in entry if k not in INFO_FIELDS]
    distro = entry.get("distro")
    if distro not in KNOWN_DISTROS:
        known = ", ".join(sorted(KNOWN_DISTROS))
        problems.append(f"{where}: unknown distro {distro!r} (known: {known})")
    version = entry.get("version")
    if not isinstance(version, str) or not version:
        problems.append(f"{where}: 'version' must be a non-empty string")
    codename = entry.get("codename")
    if distro == "debian" and (not isinstance(codename, str) or not codename):
        problems.append(f"{where}: a Debian alias needs a 'codename' (its upstream directory)")
    elif codename is not None and not isinstance(codename, str):
        problems.append(f"{where}: 'codename' must be a string")
    snapshot = entry.get("snapshot")
    if not isinstance(snapshot, str) or not snapshot:
        problems.append(f"{where}: 'snapshot' must be a non-empty string")
        snapshot = ""
    elif (
        isinstance(distro, str)
        and distro in KNOWN_DISTROS
        and KNOWN_DISTROS[distro](snapshot) is None
    ):
        problems.append(f"{where}: snapshot {snapshot!r} is not a dated {distro} snapshot name")
    bumped_at = entry.get("bumped_at")
    if bumped_at is not None:
        try:
            datetime.date.fromisoformat(str(bumped_at))
            if not isinstance(bumped_at, str):
                raise ValueError
        except ValueError:
            problems.append(f"{where}: bumped_at {bumped_at!r} is not a YYYY-MM-DD date")
    arch = entry.get("arch")
    if not isinstance(arch, dict):
        return problems + [
            f"{where}: 'arch' must be an object with {' and '.join(REQUIRED_ARCHES)}"
        ]
    for key in REQUIRED_ARCHES:
        if key not in arch:
            problems.append(f"{where}: no {key} image")
    for key, image in arch.items():
        at = f"{where} arch {key!r}"
        if key not in ARCHES:
            problems.append(f"{at}: unknown arch (known: {', '.join(ARCHES)})")
            continue
        stem = cache_stem(alias, snapshot, key)
        if not _SAFE_STEM.fullmatch(stem):
            problems.append(f"{at}: cache name {stem!r} is not a safe file name")
        if not isinstance(image, dict):
            problems.append(f"{at}: must be an object with url and sha256 or sha512")
            continue
        problems += [f"{at}: unknown field {k!r}" for k in image if k not in ARCH_FIELDS]
        problems += _check_url(at, image.get("url"), snapshot)
        pinned = [name for name in ALGORITHMS if name in image]
        if not pinned:
            problems.append(f"{at}: needs a sha256 or sha512 digest (or both)")
        for name in pinned:
            if not is_digest(image[name], name):
                problems.append(
                    f"{at}: {name} must be {HEX_DIGITS[name]} lowercase hex digits, "
                    f"got {image[name]!r}"
                )
    return problems


def check_document(doc: object) -> List[str]:
    """Every problem with a decoded catalog, one line each; empty when it passes.

    >>> check_document({"x": {"distro": "arch"}})[0]
    "alias 'x': unknown distro 'arch' (known: debian, ubuntu)"
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
