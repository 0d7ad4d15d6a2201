"""Check a sums file's OpenPGP signature, detached (Ubuntu's SHA256SUMS.gpg, openSUSE's
``.sha256.asc``, AlmaLinux's CHECKSUM.asc, Arch Linux's ``.SHA256.sig``) or clear-signed
(Fedora's CHECKSUM), with ``gpgv``, and the policy saying which keys to trust.

By default the keys shipped with pyimagecache (:mod:`pyimagecache.keys`) for the family and
release at hand are trusted; a user keyring (``--keyring``, ``PYIMAGECACHE_KEYRING``) replaces
them; ``--no-verify-signatures`` checks nothing (and says so); ``--require-signatures`` refuses
families that publish no signature. gpgv trusts exactly the keys given to it and nothing from
the user's GnuPG home. Only the small sums file, its signature and the keyring touch the disk
(gpgv reads files), in a private temporary directory.

>>> SignaturePolicy().describe()
'verified with the keys shipped with pyimagecache'
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import RefreshError
from ..keys import Keyring, dearmor, keyring_for

_TIMEOUT = 60.0
#: What to install for gpgv, per platform (the one error a machine without it gets).
INSTALL_HINT = (
    "install it (Debian/Ubuntu: apt install gpgv; Fedora: dnf install gnupg2; "
    "macOS: brew install gnupg)"
)
VERIFIED, UNSIGNED, NOT_CHECKED = "verified", "unsigned", "not-checked"


class SignatureRejected(RefreshError):
    """A signature that is bad, by a key not trusted, or missing where upstream signs: the
    snapshot is skipped by a refresh and refused as a fallback (never an aborted run)."""


def find_gpgv() -> Optional[str]:
    """The gpgv executable, or None."""
    return shutil.which("gpgv")


def require_gpgv(why: str = "upstream checksum signatures cannot be verified") -> str:
    """The gpgv executable; without it one error naming what to install."""
    gpgv = find_gpgv()
    if gpgv is None:
        raise RefreshError(
            f"gpgv is not installed, so {why}: {INSTALL_HINT}, or pass "
            "--no-verify-signatures (PYIMAGECACHE_NO_VERIFY_SIGNATURES=1) to use checksum "
            "files unverified"
        )
    return gpgv


def user_keyring(path: Path) -> Keyring:
    """A user's keyring file (binary, as ``gpg --export`` writes, or ASCII-armoured)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RefreshError(
            f"keyring {path}: cannot read it: {exc.strerror or exc}"
            + (" (a directory?)" if path.is_dir() else "")
        ) from None
    return Keyring(dearmor(data, what=f"keyring {path}"), f"keyring {path}")


@dataclass(frozen=True)
class SignaturePolicy:
    """Which keys a run trusts and what it does without a signature.

    ``keyring``: a user keyring replacing the shipped keys; ``verify``: False checks nothing
    (``--no-verify-signatures``); ``require``: families that publish no signature are refused
    (``--require-signatures``).
    """

    keyring: Optional[Path] = None
    verify: bool = True
    require: bool = False

    def __post_init__(self) -> None:
        if self.require and not self.verify:
            raise RefreshError(
                "--require-signatures and --no-verify-signatures contradict each other"
            )

    def describe(self) -> str:
        """How signatures are treated, for the log."""
        if not self.verify:
            return "NOT verified (--no-verify-signatures): checksum files are trusted as served"
        if self.keyring is not None:
            return f"verified with the keyring {self.keyring}"
        return "verified with the keys shipped with pyimagecache"

    def keys_for(self, family: str, version: str) -> Keyring:
        """The keys trusted for ``family`` release ``version``."""
        if self.keyring is not None:
            return user_keyring(self.keyring)
        return keyring_for(family, version)


def verify_detached(data: bytes, signature: bytes, keyring: Keyring, *, what: str) -> str:
    """The primary fingerprint of the key in ``keyring`` that made ``signature``, a good
    detached signature of ``data``; :class:`SignatureRejected` otherwise.

    >>> verify_detached(sums, sums_sig, user_keyring(Path("k.gpg")), what="S")  # doctest: +SKIP
    'D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81'
    """
    _, key = _gpgv({"sums.sig": signature, "sums": data}, keyring, what=what)
    return key


def verify_clearsigned(message: bytes, keyring: Keyring, *, what: str) -> Tuple[str, str]:
    """(the signed text, the signing key's primary fingerprint) of the clear-signed
    ``message``, as gpgv writes it out after checking the signature against ``keyring``;
    :class:`SignatureRejected` unless the signature is good.

    Only what gpgv verified is returned: text outside the armour never reaches a parser.
    """
    out, key = _gpgv({"sums.asc": message}, keyring, what=what, output=True)
    try:
        return out.decode("utf-8"), key
    except UnicodeDecodeError as exc:
        raise RefreshError(f"{what}: signed text is not UTF-8 (byte {exc.start})") from None


def _gpgv(
    files: Dict[str, bytes], keyring: Keyring, *, what: str, output: bool = False
) -> Tuple[bytes, str]:
    """Run gpgv over ``files`` (written in order into a private directory): (its stdout, the
    primary fingerprint of the key whose signature was good)."""
    gpgv = require_gpgv(f"{what} cannot be verified")
    with tempfile.TemporaryDirectory(prefix="pyimagecache-gpgv-") as tmp:
        ring = Path(tmp, "keyring.gpg")
        ring.write_bytes(keyring.data)
        paths = []
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
            paths.append(str(Path(tmp, name)))
        # Status lines on stderr: stdout carries the clear-signed text.
        cmd = [gpgv, "--homedir", tmp, "--status-fd", "2", "--keyring", str(ring)]
        if output:
            cmd += ["--output", "-"]
        try:
            done = subprocess.run(cmd + paths, capture_output=True, timeout=_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise RefreshError(f"cannot verify {what}: gpgv took over {_TIMEOUT:.0f} s") from None
    stderr = done.stderr.decode("utf-8", errors="replace").splitlines()
    status = [line[9:].split() for line in stderr if line.startswith("[GNUPG:] ")]
    said = [line for line in stderr if not line.startswith("[GNUPG:] ")]
    key = _good_key(status)
    if done.returncode != 0 or key is None:
        reason = _reason(status, said, done.returncode, keyring)
        raise SignatureRejected(f"bad signature on {what}: {reason}")
    return done.stdout, key


def _good_key(status: List[List[str]]) -> Optional[str]:
    """The primary fingerprint of a signature gpgv found good (VALIDSIG's last field), if
    every signature it saw was good. A signature by a key that has expired since counts only
    when it was made before the key expired."""
    valid: Optional[str] = None
    expired_at: Optional[int] = None
    expired = False
    for words in status:
        tag = words[0] if words else ""
        if tag in ("BADSIG", "ERRSIG", "REVKEYSIG", "NODATA"):
            return None
        if tag == "KEYEXPIRED" and len(words) > 1 and words[1].isdigit():
            expired_at = int(words[1])
        if tag == "EXPKEYSIG":
            expired = True
        if tag == "VALIDSIG" and len(words) > 3:
            made = words[3]
            if expired and not (made.isdigit() and expired_at and int(made) < expired_at):
                return None
            valid = words[-1].upper()
    return valid


def _reason(status: List[List[str]], said: List[str], code: int, keyring: Keyring) -> str:
    """What gpgv said, in one line."""
    tags = {w[0]: w for w in status if w}
    if "ERRSIG" in tags or "NO_PUBKEY" in tags:
        words = tags.get("NO_PUBKEY") or tags["ERRSIG"]
        signer = words[1] if len(words) > 1 else "an unknown key"
        trusted = f" ({', '.join(keyring.fingerprints)})" if keyring.fingerprints else ""
        return f"gpgv: made by key {signer}, which is not in the {keyring.label}{trusted}"
    if "EXPKEYSIG" in tags:
        return "gpgv: made by a key after it expired"
    if "REVKEYSIG" in tags:
        return "gpgv: made by a revoked key"
    last = said[-1].strip() if said else f"exit status {code}"
    return "gpgv: " + (last[len("gpgv: ") :] if last.startswith("gpgv: ") else last)
