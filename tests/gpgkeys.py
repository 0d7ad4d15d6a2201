"""Throwaway OpenPGP keys made with the real gpg, for signing fake upstreams' checksum files.

    >>> key = ThrowawayKey.make(tmp_path / "upstream")          # doctest: +SKIP
    >>> key.detach(b"data"), key.clear(b"data"), key.keyring       # doctest: +SKIP

A key lives in its own GnuPG home (its agent is stopped by :meth:`ThrowawayKey.close`). Its
public half is exported as a binary keyring (what ``--keyring``/``PYIMAGECACHE_KEYRING`` take)
and an armoured one. Signatures are cached by content: fake upstreams render the same checksum
file many times, and gpg is the slow part. :func:`shared_key` is one key per test process,
made on first use, which :class:`fakeupstream.FakeUpstream` signs with unless a test says
otherwise; without gpg the test asking for it is skipped (failed under ``CI=true``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

from conftest import require_tool


class ThrowawayKey:
    """An ed25519 signing key with no passphrase, in a private GnuPG home."""

    def __init__(self, home: Path, uid: str, fingerprint: str) -> None:
        self.home, self.uid, self.fingerprint = home, uid, fingerprint
        self.keyring = home / "keyring.gpg"
        self.armored = home / "keyring.asc"
        self._cache: Dict[Tuple[str, bytes], bytes] = {}

    @classmethod
    def make(cls, home: Path, name: str = "upstream", expire: str = "never") -> ThrowawayKey:
        gpg = require_tool("gpg")
        home.mkdir(mode=0o700, parents=True)
        uid = f"{name} <{name}@example.invalid>"
        env = {**os.environ, "GNUPGHOME": str(home)}
        subprocess.run(
            [gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
            + ["--quick-gen-key", uid, "ed25519", "sign", expire],
            env=env,
            check=True,
            capture_output=True,
        )
        listing = subprocess.run(
            [gpg, "--batch", "--with-colons", "--list-keys", uid],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        key = cls(home, uid, fingerprint)
        key.keyring.write_bytes(key._gpg("--export", uid))
        key.armored.write_bytes(key._gpg("--armor", "--export", uid))
        return key

    def _gpg(self, *args: str, data: Optional[bytes] = None) -> bytes:
        done = subprocess.run(
            [require_tool("gpg"), "--batch", *args],
            input=data,
            env={**os.environ, "GNUPGHOME": str(self.home)},
            check=True,
            capture_output=True,
        )
        return done.stdout

    def _sign(self, mode: str, data: bytes) -> bytes:
        cached = self._cache.get((mode, data))
        if cached is None:
            cached = self._gpg("--armor", mode, "--local-user", self.uid, data=data)
            self._cache[(mode, data)] = cached
        return cached

    def detach(self, data: bytes) -> bytes:
        """An armoured detached signature of ``data`` (as SHA256SUMS.gpg, .asc, .sig)."""
        return self._sign("--detach-sign", data)

    def clear(self, data: bytes) -> bytes:
        """``data`` clear-signed (as Fedora's CHECKSUM)."""
        return self._sign("--clearsign", data)

    def close(self) -> None:
        gpgconf = shutil.which("gpgconf")
        if gpgconf:
            subprocess.run(
                [gpgconf, "--homedir", str(self.home), "--kill", "gpg-agent"],
                capture_output=True,
                check=False,
            )


_SHARED: Dict[str, ThrowawayKey] = {}


def shared_key() -> ThrowawayKey:
    """This process's default upstream key (made on first use, removed at exit)."""
    if "key" not in _SHARED:
        base = Path(tempfile.mkdtemp(prefix="pyimagecache-test-gnupg-"))
        key = ThrowawayKey.make(base / "home", "fake-upstream")
        _SHARED["key"] = key

        def cleanup() -> None:
            key.close()
            shutil.rmtree(base, ignore_errors=True)

        atexit.register(cleanup)
    return _SHARED["key"]


def shared_detach(data: bytes) -> bytes:
    return shared_key().detach(data)


def shared_clear(data: bytes) -> bytes:
    return shared_key().clear(data)
