"""Check a sums file's OpenPGP signature, detached (Ubuntu's SHA256SUMS.gpg, openSUSE's
``.sha256.asc``, Arch Linux's ``.SHA256.sig``) or clear-signed (Fedora's CHECKSUM), with
``gpgv`` against a given keyring.

gpgv trusts exactly the keys in ``--keyring`` and nothing from the user's GnuPG home, which is
what pinning an upstream's signing key means. Only the small sums file and its signature touch
the disk (gpgv reads files), in a private temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional

from ..errors import RefreshError

_TIMEOUT = 60.0


def find_gpgv() -> Optional[str]:
    """The gpgv executable, or None."""
    return shutil.which("gpgv")


def verify_detached(data: bytes, signature: bytes, keyring: Path, *, what: str) -> None:
    """Raise :class:`RefreshError` unless ``signature`` is a good signature of ``data`` made by
    a key in ``keyring`` (a binary keyring, as ``gpg --export`` writes).

    >>> verify_detached(sums, sums_sig, Path("ubuntu.gpg"), what="SHA256SUMS")  # doctest: +SKIP
    """
    _gpgv({"sums.sig": signature, "sums": data}, keyring, what=what)


def verify_clearsigned(message: bytes, keyring: Path, *, what: str) -> str:
    """The signed text of the clear-signed ``message``, as gpgv writes it out after checking
    the signature against ``keyring``; :class:`RefreshError` unless the signature is good.

    Only what gpgv verified is returned: text outside the armour never reaches a parser.
    """
    out = _gpgv({"sums.asc": message}, keyring, what=what, output=True)
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefreshError(f"{what}: signed text is not UTF-8 (byte {exc.start})") from None


def _gpgv(files: Dict[str, bytes], keyring: Path, *, what: str, output: bool = False) -> bytes:
    """Run gpgv over ``files`` (written in order into a private directory); its stdout."""
    gpgv = find_gpgv()
    if gpgv is None:
        raise RefreshError(f"cannot verify {what}: --keyring given but gpgv is not installed")
    keyring = Path(keyring).resolve()
    if not keyring.is_file():
        raise RefreshError(f"cannot verify {what}: keyring {keyring} is not a file")
    with tempfile.TemporaryDirectory(prefix="pyimagecache-gpgv-") as tmp:
        paths = []
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
            paths.append(str(Path(tmp, name)))
        cmd = [gpgv, "--homedir", tmp, "--keyring", str(keyring)]
        if output:
            cmd += ["--output", "-"]
        try:
            done = subprocess.run(cmd + paths, capture_output=True, timeout=_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise RefreshError(f"cannot verify {what}: gpgv took over {_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise RefreshError(f"bad signature on {what}: gpgv: {reason}")
    return done.stdout
