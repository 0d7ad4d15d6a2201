"""The shipped signing keys: each file is the key its manifest entry names (the published
fingerprint, by the real gpg and by the pure-Python parser the refresher trusts), the manifest
covers every family that signs and every release the catalog pins of it, every family is
marked as signing or not, and README lists each key with its fingerprint."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
from conftest import require_tool

from pyimagecache.errors import RefreshError
from pyimagecache.keys import (
    dearmor,
    fingerprint,
    key_bytes,
    keyring_for,
    shipped_keys,
)
from pyimagecache.refresh.families import FAMILIES

KEYS = shipped_keys()
README = Path(__file__).resolve().parents[1] / "README.md"
#: The published fingerprint of every shipped key, with the public record it was read from
#: (README's table and keys.json give both records): a key file swapped or re-exported with
#: another key fails here.
PUBLISHED = {
    "ubuntu-cloudimage": "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81",
    "fedora-43": "C6E7F081CF80E13146676E88829B606631645531",
    "fedora-44": "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6",
    "fedora-45": "4F50A6114CD5C6976A7F1179655A4B02F577861E",
    "almalinux-8": "BC5EDDCADF502C077F1582882AE81E8ACED7258B",
    "almalinux-9": "BF18AC2876178908D6E71267D36CB86CB86B3716",
    "almalinux-10": "EE6DB7B98F5BF5EDD9DA0DE5DEE5C11CC2A1E572",
    "opensuse": "AD485664E901B867051AB15F35A2F86E29B700A4",
    "arch-boxes": "1B9A16984A4E8CB448712D2AE0B78BF4326C6F8F",
}


def test_the_manifest_is_the_published_fingerprint_table() -> None:
    assert {k.name: k.fingerprint for k in KEYS} == PUBLISHED


@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.name)
def test_each_key_file_has_its_published_fingerprint(key, tmp_path) -> None:
    armored = files("pyimagecache.keys").joinpath(key.file).read_bytes()
    assert armored.count(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") == 1  # one key per file
    assert fingerprint(key_bytes(key)) == PUBLISHED[key.name]
    # the real gpg reads the same key, with the same user id, and nothing else
    gpg = require_tool("gpg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    out = subprocess.run(
        [gpg, "--homedir", str(home), "--batch", "--with-colons", "--show-keys"],
        input=armored,
        capture_output=True,
        check=True,
    ).stdout.decode()
    records = [line.split(":") for line in out.splitlines()]
    primaries = [r for r in records if r[0] == "pub"]
    assert len(primaries) == 1
    first_fpr = next(r[9] for r in records if r[0] == "fpr")
    assert first_fpr == PUBLISHED[key.name]
    assert key.uid in [r[9] for r in records if r[0] == "uid"]
    assert primaries[0][1] not in ("r", "e")  # neither revoked nor expired today


def test_every_family_is_marked_signing_or_not_and_every_signing_release_has_a_key() -> None:
    catalog = json.loads(files("pyimagecache").joinpath("catalog.json").read_bytes())
    for name, layout in FAMILIES.items():
        assert layout.signed != layout.unsigned, f"{name}: mark it unsigned or say how it signs"
        if layout.unsigned:
            continue
        assert any(k.covers(name, "") or any(f == name for f, _ in k.signs) for k in KEYS), name
        for alias, entry in catalog.items():
            if entry["distro"] == name:
                ring = keyring_for(name, entry["version"])  # raises when no key signs it
                assert ring.fingerprints, alias


def test_the_releases_being_added_have_their_keys() -> None:
    """AlmaLinux 8, AlmaLinux Kitten 10, openSUSE Tumbleweed, Ubuntu 20.04 and
    25.10, the next Fedora: wiring them is one line in their family module."""
    for family, version, key in [
        ("almalinux", "8", "almalinux-8"),
        ("almalinux-kitten", "10", "almalinux-10"),
        ("opensuse-tumbleweed", "", "opensuse"),
        ("ubuntu", "20.04", "ubuntu-cloudimage"),
        ("ubuntu", "25.10", "ubuntu-cloudimage"),
        ("fedora", "45", "fedora-45"),
    ]:
        assert keyring_for(family, version).label == f"shipped key {key}"
    with pytest.raises(RefreshError, match="no shipped signing key for fedora 46: pass --keyring"):
        keyring_for("fedora", "46")


def test_a_key_file_that_does_not_hash_to_its_fingerprint_is_refused() -> None:
    swapped = dataclasses.replace(KEYS[0], file=KEYS[1].file)
    with pytest.raises(RefreshError, match="the package is damaged"):
        key_bytes(swapped)


def test_dearmour_checks_the_crc_and_passes_binary_through() -> None:
    armored = files("pyimagecache.keys").joinpath(KEYS[1].file).read_text()
    body = [i for i, line in enumerate(armored.splitlines()) if len(line) == 64][3]
    lines = armored.splitlines()
    lines[body] = lines[body][::-1]  # still base64, other bytes
    with pytest.raises(RefreshError, match="armour checksum does not match"):
        dearmor("\n".join(lines).encode(), what="k")
    binary = dearmor(armored.encode(), what="k")
    assert dearmor(binary, what="k") == binary
    with pytest.raises(RefreshError, match="does not start with a public-key packet"):
        fingerprint(b"\xc2\x01\x00", what="k")
    with pytest.raises(RefreshError, match="runs past the end"):
        fingerprint(binary[:100], what="k")


def test_readme_lists_every_key_with_its_fingerprint_and_records() -> None:
    text = README.read_text()
    assert "## Signing keys" in text
    for key in KEYS:
        row = next((line for line in text.splitlines() if f"`{key.name}`" in line), "")
        assert key.fingerprint in row, key.name
        assert key.published.split()[0] in row and key.cross_check.split()[0] in row, key.name
