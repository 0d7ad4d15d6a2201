"""Check a sums file's detached OpenPGP signature with ``gpgv`` against a given keyring.

gpgv trusts exactly the keys in ``--keyring`` and nothing from the user's GnuPG home, which is
what pinning an upstream's signing key means. Only the small sums file and its signature touch
the disk (gpgv reads files), in a private temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from ..errors import RefreshError

_TIMEOUT = 60.0


def find_gpgv() -> Optional[str]:
    """The gpgv executable, or None."""
    return shutil.which("gpgv")


def verify_detached(data: bytes, signature: bytes, keyring: Path, *, what: str) -> None:
    """Raise :class:`RefreshError` unless ``signature`` is a good signature of ``data`` made by
    a key in ``keyring`` (a binary keyring, as ``gpg --export`` writes).

    >>> verify_detached(sums, sums_sig, Path("debian.gpg"), what="SHA512SUMS")  # doctest: +SKIP
    """
    gpgv = find_gpgv()
    if gpgv is None:
        raise RefreshError(f"cannot verify {what}: --keyring given but gpgv is not installed")
    keyring = Path(keyring).resolve()
    if not keyring.is_file():
        raise RefreshError(f"cannot verify {what}: keyring {keyring} is not a file")
    with tempfile.TemporaryDirectory(prefix="pyimagecache-gpgv-") as tmp:
        sig_path, data_path = Path(tmp, "sums.sig"), Path(tmp, "sums")
        sig_path.write_bytes(signature)
        data_path.write_bytes(data)
        cmd = [gpgv, "--homedir", tmp, "--keyring", str(keyring), str(sig_path), str(data_path)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise RefreshError(f"cannot verify {what}: gpgv took over {_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise RefreshError(f"bad signature on {what}: gpgv: {reason}")
