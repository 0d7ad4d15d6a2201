"""--keyring: checksum files' signatures checked with the real gpgv and throwaway keys, detached
(Ubuntu's SHA256SUMS.gpg, openSUSE's .sha256.asc, Arch Linux's .SHA256.sig) and clear-signed
(Fedora's CHECKSUM); tampering, a foreign key, a missing signature; and without a keyring a
clear-signed file is never treated as verified."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import fakeupstreams as fu
import pytest
from conftest import require_tool
from fakeupstream import FakeUpstream

from pyimagecache.catalog import encode_document, parse_catalog
from pyimagecache.errors import RefreshError
from pyimagecache.refresh import refresh_catalog
from pyimagecache.refresh.fallback import newer_pin
from pyimagecache.settings import Settings

Signer = Callable[[bytes], bytes]
Keys = Dict[str, Tuple[Path, Signer, Signer]]
ALIASES = ("debian-12", "ubuntu-24.04", "fedora-44", "opensuse-leap-16.0", "archlinux")


def _make_key(home: Path, name: str) -> Tuple[Path, Signer, Signer]:
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

    def signer(mode: str) -> Signer:
        def sign(data: bytes) -> bytes:
            return subprocess.run(
                [gpg, "--batch", "--armor", mode, "--local-user", uid],
                input=data,
                env=env,
                check=True,
                capture_output=True,
            ).stdout

        return sign

    return keyring, signer("--detach-sign"), signer("--clearsign")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    require_tool("gpgv")
    base = tmp_path_factory.mktemp("gnupg")
    return {name: _make_key(base / name, name) for name in ("upstream", "stranger")}


@pytest.fixture
def signed(keys: Keys, tmp_path: Path) -> Iterator[Tuple[FakeUpstream, Path]]:
    with FakeUpstream(image_size=8 * 1024) as fake:
        doc = fu.seed(fake, aliases=ALIASES)
        _, detach, clear = keys["upstream"]
        fake.sign_all(detach, clear)
        path = tmp_path / "catalog.json"
        path.write_bytes(encode_document(doc))
        yield fake, path


def noble(fake: FakeUpstream, snapshot: str) -> Dict[str, str]:
    """A new Ubuntu 24.04 snapshot with every arch the alias pins."""
    arches = ["amd64", "arm64", "riscv64", "s390x", "ppc64le"]
    return fu.publish_snapshot(
        fake, "ubuntu", arches, version="24.04", codename="noble", snapshot=snapshot
    )


def fedora_riscv(fake: FakeUpstream) -> str:
    """A newer Fedora 44 riscv64 compose (its own build id), with its clear-signed CHECKSUM."""
    path = fu.path_of("fedora", "riscv64", version="44", snapshot="44-20260901.0")
    return fu.publish(fake, "fedora", path)


def refresh(fake: FakeUpstream, path: Path, keyring: Any) -> List[str]:
    lines: List[str] = []
    refresh_catalog(
        path,
        keyring=keyring,
        roots=fake.roots(),
        today="2026-12-01",
        log=lines.append,
        network={"retries": 0, "timeout": 5.0},
    )
    return lines


def test_good_signatures_bump_and_say_what_was_verified(signed, keys):
    fake, path = signed
    new = {
        "ubuntu-24.04": noble(fake, "release-20260801"),
        "opensuse-leap-16.0": fu.publish_snapshot(
            fake, "opensuse-leap", ["arm64"], version="16.0", snapshot="Build18.9"
        ),
        "archlinux": fu.publish_snapshot(fake, "archlinux", ["amd64"], snapshot="20260801.1"),
        "debian-12": fu.publish_snapshot(
            fake,
            "debian",
            ["amd64", "arm64", "ppc64le"],
            version="12",
            codename="bookworm",
            snapshot="20260801-2600",
        ),
    }
    lines = refresh(fake, path, keys["upstream"][0])
    doc = json.loads(path.read_bytes())
    for alias, images in new.items():
        for arch, image in images.items():
            assert doc[alias]["arch"][arch]["url"] == fake.url(image)
    fetched = fake.paths()
    assert "/ubuntu/noble/release-20260801/SHA256SUMS.gpg" in fetched
    assert any(p.endswith("Build18.9.qcow2.sha256.asc") for p in fetched)
    assert any(p.endswith("cloudimg-20260801.1.qcow2.SHA256.sig") for p in fetched)
    assert any(
        line.startswith("verified ") and "SHA256SUMS: good signature" in line for line in lines
    )
    # Debian signs nothing: the keyring checked nothing, and the log says so
    assert any(
        line.startswith("unverified ") and "SHA512SUMS: upstream does not sign it" in line
        for line in lines
    )


def test_clear_signed_checksum_verified_with_gpgv(signed, keys):
    fake, path = signed
    info = parse_catalog(json.loads(path.read_bytes()), embedded=False)["fedora-44"]
    image = fedora_riscv(fake)
    got = newer_pin(
        "fedora-44",
        info,
        "riscv64",
        settings=Settings(timeout=5.0, retry=0),
        keyring=keys["upstream"][0],
    )
    assert got.verified_signature and got.url == fake.url(image)
    assert got.source.endswith("/Fedora-Cloud-44-20260901.0-riscv64-CHECKSUM")
    assert got.expected.sha256 == fake.sha256(image)


def test_no_keyring_clear_signed_is_not_verified(signed, keys):
    fake, path = signed
    info = parse_catalog(json.loads(path.read_bytes()), embedded=False)["fedora-44"]
    fedora_riscv(fake)
    got = newer_pin(
        "fedora-44", info, "riscv64", settings=Settings(timeout=5.0, retry=0), keyring=None
    )
    assert not got.verified_signature  # a good clear signature, but nobody checked it
    lines = refresh(fake, path, None)
    assert any(
        line.startswith("unverified ") and "clear-signed" in line and "NOT checked" in line
        for line in lines
    ), lines


@pytest.mark.parametrize("kind", ["detached", "clear"])
def test_signature_by_another_key_fails(signed, keys, kind):
    fake, path = signed
    before = path.read_bytes()
    _, detach, clear = keys["stranger"]
    fake.sign_all(detach, clear)
    if kind == "detached":
        noble(fake, "release-20260801")
        match = r"bad signature on .*release-20260801/SHA256SUMS"
    else:
        fedora_riscv(fake)
        match = r"bad signature on .*Fedora-Cloud-44-20260901.0-riscv64-CHECKSUM"
    fake.clear_log()
    with pytest.raises(RefreshError, match=match):
        refresh(fake, path, keys["upstream"][0])
    assert path.read_bytes() == before
    assert fake.image_bytes_sent() == 0  # nothing downloaded on the strength of a bad signature


@pytest.mark.parametrize("kind", ["detached", "clear"])
def test_tampered_sums_fail(signed, keys, kind):
    fake, path = signed
    if kind == "detached":
        images = noble(fake, "release-20260801")
        sums = images["amd64"].rsplit("/", 1)[0] + "/SHA256SUMS"
        match = r"bad signature on .*release-20260801/SHA256SUMS"
    else:
        image = fedora_riscv(fake)
        sums = image.rsplit("/", 1)[0] + "/Fedora-Cloud-44-20260901.0-riscv64-CHECKSUM"
        match = r"bad signature on .*-riscv64-CHECKSUM"
    digest = fake.sha256(
        sorted(
            p
            for p in fake.files
            if p.startswith(sums.rsplit("/", 1)[0]) and p.endswith((".img", ".qcow2"))
        )[0]
    )
    fake.tamper(sums, digest.encode(), b"0" * 64)  # not signed again
    with pytest.raises(RefreshError, match=match):
        refresh(fake, path, keys["upstream"][0])


def test_clear_signature_stripped_is_refused_with_a_keyring(signed, keys):
    fake, path = signed
    image = fedora_riscv(fake)
    sums = image.rsplit("/", 1)[0] + "/Fedora-Cloud-44-20260901.0-riscv64-CHECKSUM"
    fake.set_file(sums, fake.sums_text(sums))
    with pytest.raises(RefreshError, match="is not clear-signed, but upstream signs it"):
        refresh(fake, path, keys["upstream"][0])


def test_missing_signature_falls_back(signed, keys):
    fake, path = signed
    noble(fake, "release-20260801")
    fake.signer = None
    noble(fake, "release-20260802")  # unsigned
    lines = refresh(fake, path, keys["upstream"][0])
    assert json.loads(path.read_bytes())["ubuntu-24.04"]["snapshot"] == "release-20260801"
    assert any("release-20260802 is incomplete (no SHA256SUMS.gpg)" in line for line in lines)


def test_keyring_without_gpgv_is_an_error(signed, keys, monkeypatch, tmp_path):
    fake, path = signed
    noble(fake, "release-20260801")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RefreshError, match="gpgv is not installed"):
        refresh(fake, path, keys["upstream"][0])
