"""Resolve a Debian alias against cloud.debian.org's layout.

``<root><codename>/`` lists dated snapshots (``20260601-2496/``) besides ``latest/`` and
``daily/``. A snapshot holds ``debian-<version>-generic-<arch>-<snapshot>.raw`` per arch and a
SHA512SUMS (signed by SHA512SUMS.sign). Debian publishes no SHA-256, which is what the catalog
pins, so each new image is streamed once through both hashes: the SHA-512 must match the sums
file and the SHA-256 becomes the pin.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Union

from ..errors import RefreshError
from .pins import ArchPin, Pin, pinned_arches, walk
from .snapshots import debian_key, newest_first
from .upstream import Upstream

#: The upstream index root; mirrors and tests pass another.
DEBIAN_ROOT = "https://cloud.debian.org/images/cloud/"


def image_name(version: str, arch: str, snapshot: str) -> str:
    """The image's file name in a snapshot directory.

    >>> image_name("12", "amd64", "20260601-2496")
    'debian-12-generic-amd64-20260601-2496.raw'
    """
    return f"debian-{version}-generic-{arch}-{snapshot}.raw"


def resolve_debian(
    alias: str, entry: Mapping[str, object], root: str, upstream: Upstream
) -> Optional[Pin]:
    """The newest complete snapshot's pin, or None when the catalog's pin is current."""
    version, codename = str(entry.get("version") or ""), str(entry.get("codename") or "")
    if not version or not codename:
        raise RefreshError(f"{alias}: a Debian alias needs both 'version' and 'codename'")
    current = entry.get("snapshot")
    base = f"{root}{codename}/"
    candidates = newest_first(upstream.listing(base).dirs, debian_key)

    def try_snapshot(snapshot: str) -> Union[Pin, str]:
        directory = f"{base}{snapshot}/"
        files = upstream.listing(directory).files
        names = {arch: image_name(version, arch, snapshot) for arch in pinned_arches(entry)}
        wanted = ["SHA512SUMS", *names.values()]
        if upstream.keyring is not None:
            wanted.append("SHA512SUMS.sign")
        missing = [name for name in wanted if name not in files]
        if missing:
            return f"no {', '.join(missing)}"
        sums = upstream.sums(directory + "SHA512SUMS", "sha512", directory + "SHA512SUMS.sign")
        unsummed = [name for name in names.values() if name not in sums]
        if unsummed:
            return f"SHA512SUMS has no line for {', '.join(unsummed)}"
        pins: Dict[str, ArchPin] = {}
        for arch, name in names.items():
            url = directory + name
            digests = upstream.hash(url, f"{alias} {arch}")
            if digests["sha512"] != sums[name]:
                raise RefreshError(
                    f"{alias} {arch}: SHA-512 mismatch for {url}: SHA512SUMS says "
                    f"{sums[name]}, the download hashes to {digests['sha512']}"
                )
            pins[arch] = ArchPin(url=url, sha256=digests["sha256"])
        return Pin(snapshot=snapshot, arch=pins)

    current_name = current if isinstance(current, str) else None
    return walk(alias, candidates, current_name, debian_key, try_snapshot, upstream.log, base)
