"""--keyring: sums files' detached signatures checked with the real gpgv, throwaway keys."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple

import pytest
from conftest import require_tool
from fakeupstream import FakeUpstream
from test_refresh import TODAY, seed

from pyimagecache.catalog import encode_document
from pyimagecache.errors import RefreshError
from pyimagecache.refresh import refresh_catalog

Keys = Dict[str, Tuple[Path, Callable[[bytes], bytes]]]


def _make_key(home: Path, name: str) -> Tuple[Path, Callable[[bytes], bytes]]:
    gpg = require_tool("gpg")
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    uid = f"{name} <{name}@example.invalid>"
    subprocess.run(
        [gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        + ["--quick-gen-key", uid, "ed25519", "sign", "never"],
        env=env,
        check=True,
        capture_output=True,
    )
    keyring = home / "keyring.gpg"
    keyring.write_bytes(
        subprocess.run([gpg, "--export", uid], env=env, check=True, capture_output=True).stdout
    )

    def sign(data: bytes) -> bytes:
        return subprocess.run(
            [gpg, "--batch", "--armor", "--detach-sign", "--local-user", uid],
            input=data,
            env=env,
            check=True,
            capture_output=True,
        ).stdout

    return keyring, sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    require_tool("gpgv")
    base = tmp_path_factory.mktemp("gnupg")
    return {name: _make_key(base / name, name) for name in ("upstream", "stranger")}


@pytest.fixture
def signed(keys: Keys, tmp_path: Path) -> Iterator[Tuple[FakeUpstream, Path]]:
    with FakeUpstream(image_size=16 * 1024) as fake:
        doc = seed(fake)
        fake.sign_all(keys["upstream"][1])
        path = tmp_path / "catalog.json"
        path.write_bytes(encode_document(doc))
        yield fake, path


def refresh(fake: FakeUpstream, path: Path, keyring: Path) -> None:
    refresh_catalog(
        path,
        keyring=keyring,
        debian_root=fake.debian_root,
        ubuntu_root=fake.ubuntu_root,
        today=TODAY,
        log=lambda line: None,
        network={"retries": 0, "timeout": 5.0},
    )


def test_good_signatures_bump(signed, keys):
    fake, path = signed
    fake.add_debian("12", "bookworm", "20260615-2510")
    fake.add_ubuntu("24.04", "noble", "release-20260601")
    refresh(fake, path, keys["upstream"][0])
    doc = json.loads(path.read_bytes())
    assert doc["debian-12"]["snapshot"] == "20260615-2510"
    assert doc["ubuntu-24.04"]["snapshot"] == "release-20260601"
    fetched = fake.paths()
    assert "/debian/bookworm/20260615-2510/SHA512SUMS.sign" in fetched
    assert "/ubuntu/noble/release-20260601/SHA256SUMS.gpg" in fetched


def test_signature_by_another_key_fails(signed, keys):
    fake, path = signed
    before = path.read_bytes()
    fake.signer = keys["stranger"][1]
    fake.add_debian("12", "bookworm", "20260615-2510")
    with pytest.raises(RefreshError, match=r"bad signature on .*bookworm/20260615-2510/SHA512SUMS"):
        refresh(fake, path, keys["upstream"][0])
    assert path.read_bytes() == before
    assert fake.image_bytes_sent() == 0  # nothing downloaded on the strength of a bad signature


def test_tampered_sums_fail(signed, keys):
    fake, path = signed
    fake.add_ubuntu("24.04", "noble", "release-20260601")
    sums = "/ubuntu/noble/release-20260601/SHA256SUMS"
    fake.signer = None  # the tampering does not re-sign
    fake.drop_sums_line(sums, "ubuntu-24.04-server-cloudimg-amd64.manifest")
    with pytest.raises(RefreshError, match=r"bad signature on .*release-20260601/SHA256SUMS"):
        refresh(fake, path, keys["upstream"][0])


def test_missing_signature_falls_back(signed, keys):
    fake, path = signed
    fake.add_ubuntu("24.04", "noble", "release-20260601")
    fake.signer = None
    fake.add_ubuntu("24.04", "noble", "release-20260602")  # unsigned
    refresh(fake, path, keys["upstream"][0])
    assert json.loads(path.read_bytes())["ubuntu-24.04"]["snapshot"] == "release-20260601"


def test_keyring_without_gpgv_is_an_error(signed, keys, monkeypatch, tmp_path):
    fake, path = signed
    fake.add_ubuntu("24.04", "noble", "release-20260601")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RefreshError, match="gpgv is not installed"):
        refresh(fake, path, keys["upstream"][0])
