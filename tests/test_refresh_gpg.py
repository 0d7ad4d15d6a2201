"""Signatures by default: every signing family's checksum format (Ubuntu's SHA256SUMS.gpg,
Fedora's clear-signed CHECKSUM, AlmaLinux's CHECKSUM.asc, openSUSE's .sha256.asc, Arch Linux's
.SHA256.sig) checked with the real gpgv against throwaway keys, given the way a user replaces
the shipped keys (``keyring=``, ``--keyring``, ``PYIMAGECACHE_KEYRING``): a good signature
bumps the pin and its provenance says verified by which key; a bad, missing or foreign one
skips that snapshot with one line. Without a keyring the shipped keys are used (and a fake's
throwaway signature is no good against them); without gpgv one error names what to install,
unless verification is turned off, which the log and the provenance records say."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Tuple

import fakeupstreams as fu
import pytest
from conftest import require_tool
from fakeupstream import FakeUpstream
from gpgkeys import ThrowawayKey, shared_key

from pyimagecache.catalog import encode_document
from pyimagecache.cli import main
from pyimagecache.errors import RefreshError
from pyimagecache.keys import shipped_keys
from pyimagecache.refresh import refresh_catalog

TODAY = "2026-12-01"
NET = {"retries": 0, "timeout": 5.0}


class Case(NamedTuple):
    """A signing family: the alias, the arches of the group that moves, how to spell a new
    snapshot, an older and a newer snapshot name, the checksum file of an image, its format
    name and what a missing signature is called."""

    alias: str
    distro: str
    arches: Tuple[str, ...]
    kw: Dict[str, str]
    older: str
    newer: str
    fmt: str
    missing: str


CASES = {
    "ubuntu": Case(
        "ubuntu-24.04",
        "ubuntu",
        ("amd64", "arm64", "ppc64le", "riscv64", "s390x"),
        {"version": "24.04", "codename": "noble"},
        "release-20260801",
        "release-20260802",
        "coreutils",
        "no SHA256SUMS.gpg beside SHA256SUMS",
    ),
    "fedora": Case(
        "fedora-44",
        "fedora",
        ("riscv64",),
        {"version": "44"},
        "44-20260901.0",
        "44-20260902.0",
        "bsd",
        "is not clear-signed",
    ),
    "almalinux": Case(
        "almalinux-9",
        "almalinux",
        ("amd64", "arm64", "ppc64le", "s390x"),
        {"version": "9"},
        "9.9-20260901",
        "9.10-20261001",
        "coreutils",
        "no CHECKSUM.asc beside CHECKSUM",
    ),
    "opensuse-leap": Case(
        "opensuse-leap-16.0",
        "opensuse-leap",
        ("arm64",),
        {"version": "16.0"},
        "Build18.9",
        "Build19.1",
        "coreutils",
        ".sha256.asc beside",
    ),
    "archlinux": Case(
        "archlinux",
        "archlinux",
        ("amd64",),
        {},
        "20260801.560000",
        "20260802.560100",
        "coreutils",
        ".SHA256.sig beside",
    ),
}


def sums_of(case: Case, image: str) -> str:
    """The path of the checksum file publishing ``image``'s digest."""
    directory, name = image.rsplit("/", 1)
    if case.distro == "ubuntu":
        return directory + "/SHA256SUMS"
    if case.distro == "fedora":
        compose = name.split("Generic-", 1)[1].rsplit(".", 2)[0]
        return f"{directory}/Fedora-Cloud-{compose}-riscv64-CHECKSUM"
    if case.distro == "almalinux":
        return directory + "/CHECKSUM"
    return image + (".sha256" if case.distro == "opensuse-leap" else ".SHA256")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayKey]:
    require_tool("gpgv")
    key = ThrowawayKey.make(tmp_path_factory.mktemp("gnupg") / "stranger", "stranger")
    yield key
    key.close()


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    require_tool("gpgv")
    with FakeUpstream(image_size=8 * 1024) as server:
        yield server


def catalog(fake: FakeUpstream, tmp_path: Path, *aliases: str) -> Path:
    path = tmp_path / "catalog.json"
    path.write_bytes(encode_document(fu.seed(fake, aliases=aliases)))
    return path


def refresh(fake: FakeUpstream, path: Path, **kw: Any) -> List[str]:
    lines: List[str] = []
    refresh_catalog(path, roots=fake.roots(), today=TODAY, log=lines.append, network=NET, **kw)
    return lines


def publish(fake: FakeUpstream, case: Case, snapshot: str) -> Dict[str, str]:
    return fu.publish_snapshot(fake, case.distro, case.arches, snapshot=snapshot, **case.kw)


def publish_with(fake: FakeUpstream, case: Case, snapshot: str, signers: Any) -> Dict[str, str]:
    """Publish ``snapshot`` signed by ``signers`` (detached, clear; None: unsigned); every
    other checksum file keeps the fake's own signature."""
    own = (fake.signer, fake.clear_signer)
    fake.signer, fake.clear_signer = signers
    try:
        images = publish(fake, case, snapshot)
    finally:
        fake.signer, fake.clear_signer = own
    mine = {sums_of(case, image) for image in images.values()}
    for path in list(fake.sums):
        if path not in mine:
            fake.render(path)
    return images


def pinned(path: Path, case: Case) -> Dict[str, Any]:
    return dict(json.loads(path.read_bytes())[case.alias]["arch"])


@pytest.mark.parametrize("family", sorted(CASES))
def test_good_signature_bumps_and_the_provenance_names_the_key(fake, tmp_path, family):
    case = CASES[family]
    path = catalog(fake, tmp_path, case.alias)
    images = publish(fake, case, case.newer)
    lines = refresh(fake, path, keyring=fake.keyring)
    after = pinned(path, case)
    for arch, image in images.items():
        assert after[arch]["url"] == fake.url(image)
        assert after[arch]["provenance"] == {
            "record": fake.url(sums_of(case, image)),
            "format": case.fmt,
            "signature": "verified",
            "key": shared_key().fingerprint,
            "date": TODAY,
        }
    assert any(
        line.startswith("verified ") and shared_key().fingerprint in line for line in lines
    ), lines
    assert fake.image_bytes_sent() == 0


@pytest.mark.parametrize("fault", ["bad", "missing", "wrong key"])
@pytest.mark.parametrize("family", sorted(CASES))
def test_a_snapshot_without_a_good_signature_is_skipped(fake, tmp_path, stranger, family, fault):
    """The newest snapshot's checksum file is tampered with, unsigned or signed by a key not
    in the keyring: it is skipped with one line (which snapshot, which file, what gpgv said)
    and the next newest, well signed, is pinned."""
    case = CASES[family]
    path = catalog(fake, tmp_path, case.alias)
    good = publish(fake, case, case.older)
    if fault == "bad":
        bad = publish(fake, case, case.newer)
        sums = sums_of(case, next(iter(bad.values())))
        digest = fake.sha256(next(iter(bad.values())))
        fake.tamper(sums, digest.encode(), b"0" * 64)  # not signed again
        said = "bad signature on"
    elif fault == "missing":
        bad = publish_with(fake, case, case.newer, (None, None))
        sums = sums_of(case, next(iter(bad.values())))
        if family == "fedora":  # upstream's armour gone: the bare text is no signature
            fake.set_file(sums, fake.sums_text(sums))
        said = case.missing
    else:
        bad = publish_with(fake, case, case.newer, (stranger.detach, stranger.clear))
        sums = sums_of(case, next(iter(bad.values())))
        said = f"which is not in the keyring {fake.keyring}"
    fake.clear_log()
    lines = refresh(fake, path, keyring=fake.keyring)
    after = pinned(path, case)
    assert {a: after[a]["url"] for a in good} == {a: fake.url(p) for a, p in good.items()}
    skipped = [line for line in lines if line.startswith("skipped ")]
    assert len(skipped) == 1, lines
    assert f"{case.newer} refused (" in skipped[0] and said in skipped[0], skipped
    assert sums.rsplit("/", 1)[1] in skipped[0]
    assert fake.image_bytes_sent() == 0  # nothing downloaded on the strength of it


def test_without_a_keyring_the_shipped_keys_are_used(fake, tmp_path):
    """The fake signs with a throwaway key, which is not Canonical's: by default the shipped
    key is what the signature is checked against, so the snapshot is skipped."""
    case = CASES["ubuntu"]
    path = catalog(fake, tmp_path, case.alias)
    before = path.read_bytes()
    publish(fake, case, case.newer)
    lines = refresh(fake, path)
    assert "signatures: verified with the keys shipped with pyimagecache" in lines
    ubuntu = next(k for k in shipped_keys() if k.name == "ubuntu-cloudimage")
    assert any(
        line.startswith("skipped ubuntu-24.04: release-20260802 refused (bad signature on")
        and f"not in the shipped key ubuntu-cloudimage ({ubuntu.fingerprint})" in line
        for line in lines
    ), lines
    assert path.read_bytes() == before  # nothing newer was good: the pin is kept


def test_an_armoured_user_keyring_works_too(fake, tmp_path):
    case = CASES["archlinux"]
    path = catalog(fake, tmp_path, case.alias)
    publish(fake, case, case.newer)
    refresh(fake, path, keyring=shared_key().armored)
    assert pinned(path, case)["amd64"]["provenance"]["signature"] == "verified"


def test_an_unsigned_family_says_unsigned(fake, tmp_path):
    path = catalog(fake, tmp_path, "debian-12")
    images = fu.publish_snapshot(
        fake,
        "debian",
        ["amd64", "arm64", "ppc64le"],
        version="12",
        codename="bookworm",
        snapshot="20260801-2600",
    )
    lines = refresh(fake, path)
    slot = json.loads(path.read_bytes())["debian-12"]["arch"]["amd64"]
    assert slot["url"] == fake.url(images["amd64"])
    assert slot["provenance"] == {
        "record": fake.url("/debian/bookworm/20260801-2600/SHA512SUMS"),
        "format": "coreutils",
        "signature": "unsigned",
        "date": TODAY,
    }
    assert any(
        line.startswith("unsigned ") and "SHA512SUMS: upstream publishes no signature" in line
        for line in lines
    ), lines


def test_require_signatures_refuses_a_family_that_signs_nothing(fake, tmp_path):
    path = catalog(fake, tmp_path, "debian-12", "archlinux")
    before = path.read_bytes()
    fu.publish_snapshot(fake, "archlinux", ["amd64"], snapshot="20260802.560100")
    with pytest.raises(RefreshError) as err:
        refresh(fake, path, keyring=fake.keyring, require_signatures=True)
    message = str(err.value)
    assert "catalog refresh failed for 1 alias(es)" in message
    assert "debian-12: Debian publishes no signature for its checksum files" in message
    assert "--require-signatures" in message and "archlinux" not in message
    assert path.read_bytes() == before
    with pytest.raises(RefreshError, match="contradict"):
        refresh(fake, path, require_signatures=True, verify_signatures=False)


@pytest.fixture
def no_gpgv(monkeypatch, tmp_path) -> None:
    """gpgv hidden from PATH (Python itself is called by its full path)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_without_gpgv_one_error_names_what_to_install(fake, tmp_path, no_gpgv):
    path = catalog(fake, tmp_path, "ubuntu-24.04", "fedora-44", "debian-12")
    fake.clear_log()
    with pytest.raises(RefreshError) as err:
        refresh(fake, path, keyring=fake.keyring)
    message = str(err.value)
    assert message.startswith("gpgv is not installed, so the signatures of fedora, ubuntu")
    for hint in ("apt install gpgv", "dnf install gnupg2", "brew install gnupg"):
        assert hint in message
    assert "--no-verify-signatures" in message
    assert fake.paths() == []  # said before any request
    # a family that signs nothing needs no gpgv
    refresh(fake, path, aliases=["debian-12"])


def test_no_verify_signatures_goes_through_and_says_not_checked(fake, tmp_path, no_gpgv):
    case = CASES["ubuntu"]
    path = catalog(fake, tmp_path, case.alias, "fedora-44")
    images = publish(fake, case, case.newer)
    fedora = publish(fake, CASES["fedora"], CASES["fedora"].newer)
    lines = refresh(fake, path, verify_signatures=False)
    after = json.loads(path.read_bytes())
    assert after[case.alias]["arch"]["amd64"]["url"] == fake.url(images["amd64"])
    assert after[case.alias]["arch"]["amd64"]["provenance"]["signature"] == "not-checked"
    riscv = after["fedora-44"]["arch"]["riscv64"]
    assert riscv["url"] == fake.url(fedora["riscv64"])
    assert riscv["provenance"]["signature"] == "not-checked" and "key" not in riscv["provenance"]
    assert lines[0] == (
        "signatures: NOT verified (--no-verify-signatures): checksum files are trusted as served"
    )
    assert any(
        line.startswith("unverified ")
        and "CHECKSUM: clear-signed, but its signature was NOT" in line
        for line in lines
    ), lines
    assert not any(p.endswith("SHA256SUMS.gpg") for p in fake.paths())


def test_the_command_line_and_the_environment(fake, tmp_path, capsys, monkeypatch):
    case = CASES["ubuntu"]
    path = catalog(fake, tmp_path, case.alias, "debian-12")
    publish(fake, case, case.newer)
    roots = [arg for family, root in fake.roots().items() for arg in ("--root", f"{family}={root}")]
    common = ["catalog", "refresh", "--catalog", str(path), *roots]
    # PYIMAGECACHE_KEYRING replaces the shipped keys as --keyring does
    monkeypatch.setenv("PYIMAGECACHE_KEYRING", str(fake.keyring))
    assert main([*common, "--alias", case.alias, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert '"signature": "verified"' in out and "would bump ubuntu-24.04" in err
    monkeypatch.delenv("PYIMAGECACHE_KEYRING")
    assert main([*common, "--alias", case.alias, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "up to date" in err and "not in the shipped key ubuntu-cloudimage" in err
    assert main([*common, "--require-signatures"]) == 1
    out, err = capsys.readouterr()
    assert "debian-12: Debian publishes no signature" in err
    assert err.count("pyimagecache: error:") == 1
    monkeypatch.setenv("PYIMAGECACHE_NO_VERIFY_SIGNATURES", "1")
    assert main([*common, "--alias", case.alias, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert '"signature": "not-checked"' in out
    assert main([*common, "--require-signatures"]) == 1
    out, err = capsys.readouterr()
    assert "contradict" in err
    monkeypatch.setenv("PYIMAGECACHE_NO_VERIFY_SIGNATURES", "maybe")
    assert main([*common]) == 1
    out, err = capsys.readouterr()
    assert "PYIMAGECACHE_NO_VERIFY_SIGNATURES='maybe'" in err
    assert os.environ.get("PYIMAGECACHE_KEYRING") is None


@pytest.mark.parametrize("bad", ["missing", "directory", "not a key"])
def test_an_unusable_keyring_is_one_error_before_any_request(fake, tmp_path, bad):
    path = catalog(fake, tmp_path, "ubuntu-24.04", "fedora-44")
    keyring = tmp_path / "keyring.asc"
    if bad == "directory":
        keyring.mkdir()
    elif bad == "not a key":
        keyring.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n%%%\n")
    fake.clear_log()
    with pytest.raises(RefreshError) as err:
        refresh(fake, path, keyring=keyring)
    assert str(err.value).startswith(f"keyring {keyring}")
    assert fake.paths() == []
