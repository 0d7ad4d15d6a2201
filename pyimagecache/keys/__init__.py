"""The OpenPGP public keys upstreams sign their checksum files with, shipped as package data.

``keys.json`` names each key: its file here (one ASCII-armoured key), its 40-hex primary
fingerprint, its user id, which families and releases it signs (``releases`` empty: every
release), and the public records it was taken from and cross-checked against (README's
"Signing keys" table says the same). ``catalog refresh`` and the aged-out fallback verify with
:func:`keyring_for` the family and release at hand; a user keyring (``--keyring``,
``PYIMAGECACHE_KEYRING``) replaces these keys entirely.

A key file is trusted only when its own bytes hash to the fingerprint the manifest gives
(:func:`fingerprint` computes the OpenPGP v4 fingerprint of the first key in it), so a damaged
or swapped file is refused instead of silently trusted.

>>> [k.name for k in shipped_keys() if k.covers("fedora", "44")]
['fedora-44']
>>> keyring_for("ubuntu", "24.04").fingerprints
('D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81',)
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Tuple

from ..errors import RefreshError

MANIFEST = "keys.json"
_ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
#: The OpenPGP packet tag of a public key (RFC 4880 5.5.1).
_PUBLIC_KEY = 6


@dataclass(frozen=True)
class ShippedKey:
    """One key of the manifest (see the module docstring)."""

    name: str
    file: str
    fingerprint: str
    uid: str
    #: (family, releases) pairs; no releases means every release of the family.
    signs: Tuple[Tuple[str, Tuple[str, ...]], ...]
    what: str
    published: str
    cross_check: str

    def covers(self, family: str, version: str) -> bool:
        """Whether this key signs ``family``'s checksum files for release ``version``."""
        return any(f == family and (not r or version in r) for f, r in self.signs)


class Keyring(NamedTuple):
    """Binary OpenPGP keys for gpgv (``--keyring``), what they are, and their fingerprints
    (empty for a user's keyring, whose content is the user's business)."""

    data: bytes
    label: str
    fingerprints: Tuple[str, ...] = ()


def shipped_keys() -> List[ShippedKey]:
    """Every key of the manifest, in its order; :class:`RefreshError` for a malformed one."""
    import json
    from importlib.resources import files

    raw = files(__name__).joinpath(MANIFEST).read_bytes()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise RefreshError(f"shipped {MANIFEST} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RefreshError(f"shipped {MANIFEST}: top level must be an object of keys")
    return [_entry(name, entry) for name, entry in doc.items()]


def _entry(name: str, entry: object) -> ShippedKey:
    where = f"shipped {MANIFEST} key {name!r}"
    if not isinstance(entry, dict):
        raise RefreshError(f"{where}: must be an object")
    text = {}
    for field in ("file", "fingerprint", "uid", "what", "published", "cross_check"):
        value = entry.get(field)
        if not isinstance(value, str) or not value:
            raise RefreshError(f"{where}: field {field!r} must be a non-empty string")
        text[field] = value
    if not _FINGERPRINT.fullmatch(text["fingerprint"]):
        raise RefreshError(f"{where}: field 'fingerprint' must be 40 uppercase hex digits")
    signs = entry.get("signs")
    if not isinstance(signs, list) or not signs:
        raise RefreshError(f"{where}: field 'signs' must list the families it signs")
    pairs = []
    for item in signs:
        family = item.get("family") if isinstance(item, dict) else None
        releases = item.get("releases", []) if isinstance(item, dict) else None
        if not isinstance(family, str) or not isinstance(releases, list):
            raise RefreshError(f"{where}: each 'signs' item needs 'family' and 'releases'")
        pairs.append((family, tuple(str(r) for r in releases)))
    return ShippedKey(name=name, signs=tuple(pairs), **text)


def key_bytes(key: ShippedKey) -> bytes:
    """``key``'s file in binary form, checked against the manifest's fingerprint."""
    from importlib.resources import files

    try:
        armored = files(__name__).joinpath(key.file).read_bytes()
    except OSError as exc:
        raise RefreshError(f"shipped key {key.name}: cannot read {key.file}: {exc}") from None
    binary = dearmor(armored, what=f"shipped key file {key.file}")
    got = fingerprint(binary, what=f"shipped key file {key.file}")
    if got != key.fingerprint:
        raise RefreshError(
            f"shipped key file {key.file} has fingerprint {got}, not {key.fingerprint} as "
            f"{MANIFEST} says: the package is damaged; reinstall pyimagecache"
        )
    return binary


def keyring_for(family: str, version: str) -> Keyring:
    """The shipped keys that sign ``family`` release ``version``, as one gpgv keyring;
    :class:`RefreshError` when none does (a release newer than this pyimagecache)."""
    chosen = [k for k in shipped_keys() if k.covers(family, version)]
    if not chosen:
        raise RefreshError(
            f"no shipped signing key for {family} {version}: pass --keyring (or "
            "PYIMAGECACHE_KEYRING) with upstream's key, or upgrade pyimagecache"
        )
    return Keyring(
        b"".join(key_bytes(k) for k in chosen),
        "shipped key" + ("s " if len(chosen) > 1 else " ") + ", ".join(k.name for k in chosen),
        tuple(k.fingerprint for k in chosen),
    )


def dearmor(data: bytes, *, what: str) -> bytes:
    """The binary packets of an ASCII-armoured public key block (RFC 4880 6.2), its CRC-24
    checked when present; binary input comes back unchanged.

    >>> dearmor(b"\\x99\\x00", what="x")
    b'\\x99\\x00'
    """
    text = data.decode("ascii", errors="replace")
    if _ARMOR_BEGIN not in text:
        return data
    body = text.split(_ARMOR_BEGIN, 1)[1]
    if _ARMOR_END not in body:
        raise RefreshError(f"{what}: armour has no {_ARMOR_END} line")
    body = body.split(_ARMOR_END, 1)[0]
    lines = [line.strip() for line in body.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    # Armour headers ("Version: ...", "Comment: ...") end at the first blank line.
    if "" in lines and all(":" in line for line in lines[: lines.index("")]):
        lines = lines[lines.index("") + 1 :]
    crc = next((line[1:] for line in lines if line.startswith("=")), None)
    payload = "".join(line for line in lines if line and not line.startswith("="))
    try:
        binary = base64.b64decode(payload, validate=True)
    except ValueError:
        raise RefreshError(f"{what}: armour is not base64") from None
    if crc is not None:
        try:
            expected = int.from_bytes(base64.b64decode(crc, validate=True), "big")
        except ValueError:
            raise RefreshError(f"{what}: armour checksum line is not base64") from None
        if _crc24(binary) != expected:
            raise RefreshError(f"{what}: armour checksum does not match (damaged key file)")
    if not binary:
        raise RefreshError(f"{what}: armour holds no data")
    return binary


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def packets(data: bytes, *, what: str) -> List[Tuple[int, bytes]]:
    """(tag, body) of every packet in binary OpenPGP ``data`` (old and new formats)."""
    out: List[Tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        header = data[at]
        if not header & 0x80:
            raise RefreshError(f"{what}: byte {at} is not an OpenPGP packet header")
        length: Optional[int]
        if header & 0x40:  # new format: one-, two- or five-octet lengths
            tag, at = header & 0x3F, at + 1
            if at >= len(data):
                raise RefreshError(f"{what}: packet header cut at byte {at}")
            first = data[at]
            if first < 192:
                length, at = first, at + 1
            elif first < 224:
                if at + 2 > len(data):
                    raise RefreshError(f"{what}: packet length cut at byte {at}")
                length, at = ((first - 192) << 8) + data[at + 1] + 192, at + 2
            elif first == 255:
                if at + 5 > len(data):
                    raise RefreshError(f"{what}: packet length cut at byte {at}")
                length, at = int.from_bytes(data[at + 1 : at + 5], "big"), at + 5
            else:
                raise RefreshError(f"{what}: partial-length packet at byte {at} in a key")
        else:
            tag, kind, at = (header >> 2) & 0x0F, header & 0x03, at + 1
            if kind == 3:
                raise RefreshError(f"{what}: indeterminate-length packet at byte {at} in a key")
            size = (1, 2, 4)[kind]
            if at + size > len(data):
                raise RefreshError(f"{what}: packet length cut at byte {at}")
            length, at = int.from_bytes(data[at : at + size], "big"), at + size
        if at + length > len(data):
            raise RefreshError(f"{what}: packet at byte {at} runs past the end of the data")
        out.append((tag, data[at : at + length]))
        at += length
    return out


def fingerprint(data: bytes, *, what: str = "key") -> str:
    """The v4 fingerprint (SHA-1 over 0x99, the two-byte length and the body of the public-key
    packet, RFC 4880 12.2) of the first key in binary ``data``, 40 uppercase hex digits.

    >>> fingerprint(key_bytes(shipped_keys()[0]))
    'D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81'
    """
    found = packets(data, what=what)
    if not found or found[0][0] != _PUBLIC_KEY:
        raise RefreshError(f"{what}: does not start with a public-key packet")
    body = found[0][1]
    if not body or body[0] != 4:
        version = body[0] if body else "none"
        raise RefreshError(f"{what}: key version {version} (only v4 keys are supported)")
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest().upper()
