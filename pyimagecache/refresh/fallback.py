"""A newer pin for one alias and arch whose pinned image aged out upstream (404 or 410).

Dated upstream directories are removed after some months (lima's templates say so of most
families; openSUSE's build files go at the next maintenance image), so an old pin eventually
stops downloading. :func:`newer_pin` finds the newest complete snapshot of the same release,
newer than the pin, with that family's resolver, on the upstream the pinned URL points at (its
root is taken from the URL, so a catalog pointing at a mirror is resolved on the mirror), and
returns its URL with the digests upstream's checksum file publishes for it. It never downloads
the image: the caller downloads it and checks it against :attr:`FallbackPin.expected`.

Example (not run: it needs the network)::

    pin = newer_pin("debian-12", info, "amd64", settings=Settings(), keyring=None)
    pin.snapshot            # '20260801-2600'
    pin.url                 # '.../20260801-2600/debian-12-genericcloud-amd64-20260801-2600.qcow2'
    pin.expected            # Expected(sha256=None, sha512='...'), from SHA512SUMS
    pin.verified_signature  # False: Debian signs nothing
    pin.signature           # 'unsigned' ('verified' for Ubuntu, by pin.key)
    pin.source              # '.../bookworm/20260801-2600/SHA512SUMS'

Signatures are checked as by ``catalog refresh``: with the keys shipped for the family and
release (or ``keyring``/``settings.keyring`` instead), a family that signs must have signed
the newer snapshot's checksum file with a good signature, else that snapshot is refused;
``settings.verify_signatures=False`` checks nothing (``signature == 'not-checked'``);
``settings.require_signatures`` refuses a family that signs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..catalog import ImageInfo, snapshot_of
from ..errors import ImageCacheError, RefreshError
from ..hashing import Expected
from ..settings import Settings
from .families import FAMILIES
from .resolve import Group, context, resolve_group
from .signatures import SignaturePolicy, require_gpgv, user_keyring
from .upstream import Upstream


@dataclass(frozen=True)
class FallbackPin:
    """A pin newer than the catalog's, for one arch, straight from upstream's checksum file."""

    #: The newer snapshot (never the pinned one or an older one); stamp cache names with it.
    snapshot: str
    #: The image to download.
    url: str
    #: The digests upstream's checksum file publishes for it (what the download must match).
    expected: Expected
    #: The checksum file's signature was checked with gpgv against the keyring. False without
    #: a keyring (a clear-signed file included: its signature was not checked) and for a
    #: family whose upstream signs nothing.
    verified_signature: bool
    #: The checksum file (or Oracle's template manifest) the digests come from.
    source: str
    #: ``verified`` (by :attr:`key`), ``unsigned`` (upstream signs nothing) or ``not-checked``
    #: (``verify_signatures`` off).
    signature: str = "unsigned"
    #: The primary fingerprint of the key whose signature was verified ("" otherwise).
    key: str = ""
    #: The checksum file's format (:mod:`.sums`), for a provenance record.
    fmt: str = ""


def newer_pin(
    alias: str,
    info: ImageInfo,
    arch: str,
    *,
    settings: Settings,
    keyring: Optional[Path],
) -> FallbackPin:
    """The newest complete snapshot of ``alias``'s release for ``arch`` newer than its pin.

    The checksum file's signature must be present and good wherever the family signs
    (Ubuntu, Fedora, AlmaLinux, openSUSE, Arch Linux), checked against the keys shipped for the
    family and release, or against ``keyring`` (default: ``settings.keyring``) instead; a
    family that signs nothing gives ``signature='unsigned'``. ``settings`` carries the network
    knobs and ``verify_signatures``/``require_signatures``; ``settings.offline`` refuses to
    look upstream at all.

    Raises :class:`RefreshError`, naming the alias, the pinned snapshot and what was missing,
    when there is no newer complete snapshot, the checksum file is missing or malformed, a
    signature is missing or bad, gpgv is not installed (unless ``verify_signatures`` is off),
    or signatures are required and the family signs nothing.
    """
    pinned = snapshot_of(info, arch)
    what = f"{alias} {arch} (pinned {pinned})"
    layout = FAMILIES.get(info.distro)
    if layout is None:
        known = ", ".join(FAMILIES)
        raise RefreshError(f"{what}: unknown distro {info.distro!r} (known: {known})")
    image = info.arch.get(arch)
    if image is None:
        raise RefreshError(f"{what}: the catalog has no {arch} image to replace")
    if layout.rule(pinned) is None:
        raise RefreshError(
            f"{what}: {pinned!r} is not a {layout.distro} snapshot name ({layout.rule.shape}), "
            "so nothing can be known to be newer"
        )
    if settings.offline:
        raise RefreshError(f"{what}: offline, so no newer snapshot is looked for upstream")
    m = layout.match(image.url)
    if m is None:
        raise RefreshError(
            f"{what}: cannot tell the upstream root from {image.url} "
            f"(it does not have the shape of {layout.title} image URLs: {layout.shape})"
        )
    if keyring is None:
        keyring = settings.keyring
    notes: List[str] = []
    try:
        policy = SignaturePolicy(
            keyring=keyring,
            verify=settings.verify_signatures,
            require=settings.require_signatures,
        )
        if policy.verify and layout.signed:
            require_gpgv(f"the newer snapshot's {layout.title} checksum file cannot be verified")
            if policy.keyring is not None:
                user_keyring(policy.keyring)
    except ImageCacheError as exc:
        raise RefreshError(f"{what}: {exc}") from None
    up = Upstream(policy=policy, log=notes.append, settings=settings)
    try:
        ctx = context(
            layout, alias, info.version, info.codename, m.group("root"), {arch: image.url}
        )
        group = Group((arch,), pinned, {arch: image.expected})
        pin = resolve_group(layout, up, ctx, group, label=what)
    except ImageCacheError as exc:
        message = str(exc)
        raise RefreshError(message if message.startswith(what) else f"{what}: {message}") from None
    if pin is None:
        missing = [
            n.split(": ", 1)[1].replace("; trying the next newest", "")
            for n in notes
            if n.startswith(("fallback ", "skipped "))
        ]
        tried = f" (incomplete: {'; '.join(missing)})" if missing else ""
        raise RefreshError(
            f"{what}: no complete snapshot newer than {pinned} upstream at {m.group('root')}{tried}"
        )
    new = pin.arch[arch]
    newer, old = layout.rule(new.snapshot), layout.rule(pinned)
    if newer is None or old is None or newer <= old:  # the walk guarantees it; be sure
        raise RefreshError(f"{what}: resolver offered {new.snapshot}, which is not newer")
    return FallbackPin(
        new.snapshot,
        new.url,
        new.expected,
        new.verified,
        new.source,
        new.signature,
        new.key,
        new.fmt,
    )
