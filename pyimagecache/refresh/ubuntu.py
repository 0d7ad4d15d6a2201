"""Resolve an Ubuntu alias against cloud-images.ubuntu.com's layout.

``<root><version>/`` redirects to ``<root><codename>/``, which lists ``release-YYYYMMDD[.N]/``
snapshots besides the moving ``release/`` and ``current/``. Pins are built under the directory
the redirect lands on, like the existing ones. Ubuntu publishes SHA256SUMS (signed by
SHA256SUMS.gpg), so nothing is downloaded but the sums file.
"""

from __future__ import annotations

from typing import Mapping, Optional, Union

from ..errors import RefreshError
from .pins import ArchPin, Pin, pinned_arches, walk
from .snapshots import newest_first, ubuntu_key
from .upstream import Upstream

#: The upstream index root; mirrors and tests pass another.
UBUNTU_ROOT = "https://cloud-images.ubuntu.com/releases/"


def image_name(version: str, arch: str) -> str:
    """The image's file name in a release directory.

    >>> image_name("24.04", "arm64")
    'ubuntu-24.04-server-cloudimg-arm64.img'
    """
    return f"ubuntu-{version}-server-cloudimg-{arch}.img"


def resolve_ubuntu(
    alias: str, entry: Mapping[str, object], root: str, upstream: Upstream
) -> Optional[Pin]:
    """The newest complete snapshot's pin, or None when the catalog's pin is current."""
    version = str(entry.get("version") or "")
    codename = str(entry.get("codename") or "")
    if not version:
        raise RefreshError(f"{alias}: an Ubuntu alias needs 'version'")
    listing = upstream.listing(f"{root}{version}/")
    base = listing.url
    landed = base.rstrip("/").rsplit("/", 1)[-1]
    if codename and landed not in (codename, version):
        raise RefreshError(
            f"{alias}: {root}{version}/ leads to {base}, not to the catalog's codename {codename!r}"
        )
    candidates = newest_first(listing.dirs, ubuntu_key)

    def try_snapshot(snapshot: str) -> Union[Pin, str]:
        directory = f"{base}{snapshot}/"
        files = upstream.listing(directory).files
        names = {arch: image_name(version, arch) for arch in pinned_arches(entry)}
        wanted = ["SHA256SUMS", *names.values()]
        if upstream.keyring is not None:
            wanted.append("SHA256SUMS.gpg")
        missing = [name for name in wanted if name not in files]
        if missing:
            return f"no {', '.join(missing)}"
        sums = upstream.sums(directory + "SHA256SUMS", "sha256", directory + "SHA256SUMS.gpg")
        unsummed = [name for name in names.values() if name not in sums]
        if unsummed:
            return f"SHA256SUMS has no line for {', '.join(unsummed)}"
        pins = {
            arch: ArchPin(url=directory + name, sha256=sums[name]) for arch, name in names.items()
        }
        return Pin(snapshot=snapshot, arch=pins)

    current = entry.get("snapshot")
    current_name = current if isinstance(current, str) else None
    return walk(alias, candidates, current_name, ubuntu_key, try_snapshot, upstream.log, base)
