"""refresh.fallback.newer_pin: a pin that aged out (its snapshot gone upstream) is replaced by
the newest complete snapshot of the same release, found on the upstream the pinned URL points
at, with the digest upstream's checksum file gives; never the pinned snapshot or an older one,
never an image byte downloaded; a newer snapshot whose checksum file is not well signed is
refused, as is (with require_signatures) a family that signs nothing."""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator

import fakeupstreams as fu
import pytest
from conftest import require_tool
from fakeupstream import FakeUpstream
from gpgkeys import ThrowawayKey, shared_key

from pyimagecache.catalog import ArchImage, ImageInfo, parse_catalog, snapshot_of
from pyimagecache.errors import RefreshError
from pyimagecache.hashing import Expected
from pyimagecache.refresh.fallback import FallbackPin, newer_pin
from pyimagecache.refresh.families import FAMILIES
from pyimagecache.settings import Settings

SETTINGS = Settings(timeout=5.0, retry=0)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(image_size=8 * 1024) as server:
        yield server


def served(fake: FakeUpstream, *aliases: str) -> Dict[str, ImageInfo]:
    """The embedded pins of ``aliases``, served by ``fake``, as parsed catalog entries."""
    return parse_catalog(fu.seed(fake, aliases=aliases), embedded=False)


def gone(fake: FakeUpstream, info: ImageInfo, arch: str) -> None:
    """The pinned image ages out: upstream removed it (its directory too, where it had one)."""
    path = info.arch[arch].url[len(fake.base) :]
    directory = path.rsplit("/", 1)[0] + "/"
    snapshot = snapshot_of(info, arch)
    for p in list(fake.files):
        if p == path or (p.startswith(directory) and f"/{snapshot}/" in directory):
            fake.remove(p)


def pin(alias: str, info: ImageInfo, arch: str, **kw: object) -> FallbackPin:
    """newer_pin, trusting the fake's throwaway key as a user's keyring would (the shipped keys
    are Canonical's, Fedora's...: the fake's signatures are no good against them)."""
    kw.setdefault("settings", SETTINGS)
    family = FAMILIES.get(info.distro)
    if "keyring" not in kw and family is not None and family.signed:
        kw["keyring"] = shared_key().keyring
    kw.setdefault("keyring", None)
    return newer_pin(alias, info, arch, **kw)  # type: ignore[arg-type]


def test_debian_pin_gone_newer_snapshot_present(fake):
    info = served(fake, "debian-12")["debian-12"]
    older = fu.publish_snapshot(
        fake, "debian", ["amd64"], version="12", codename="bookworm", snapshot="20260601-2496"
    )
    newer = fu.publish_snapshot(
        fake,
        "debian",
        ["amd64", "arm64"],
        version="12",
        codename="bookworm",
        snapshot="20260801-2600",
    )
    gone(fake, info, "amd64")
    fake.clear_log()
    got = pin("debian-12", info, "amd64")
    assert got == FallbackPin(
        snapshot="20260801-2600",
        url=fake.url(newer["amd64"]),
        expected=Expected(sha512=fake.sha(newer["amd64"], "sha512")),
        verified_signature=False,
        source=fake.url("/debian/bookworm/20260801-2600/SHA512SUMS"),
        signature="unsigned",
        key="",
        fmt="coreutils",
    )
    assert older["amd64"] not in got.url
    assert fake.image_bytes_sent() == 0 and fake.image_requests() == []


def test_root_is_derived_from_the_pinned_url_so_a_mirror_works(fake):
    """The catalog points at a mirror (another path on another server): the newer snapshot is
    looked for there, not at the family's default root."""
    path = "/mirrors/bookworm/20260712-2537/debian-12-genericcloud-amd64-20260712-2537.qcow2"
    fu.publish(fake, "debian", path)
    newer = fu.publish(
        fake,
        "debian",
        "/mirrors/bookworm/20260801-2600/debian-12-genericcloud-amd64-20260801-2600.qcow2",
    )
    info = ImageInfo(
        "debian",
        "12",
        "bookworm",
        "20260712-2537",
        "",
        {"amd64": ArchImage(fake.url(path), sha512=fake.sha(path, "sha512"))},
    )
    gone(fake, info, "amd64")
    got = pin("debian-12", info, "amd64")
    assert got.url == fake.url(newer) and got.snapshot == "20260801-2600"
    assert all(p.startswith("/mirrors/") for p in fake.paths())


@pytest.mark.parametrize(
    ("alias", "arch", "distro", "kw", "snapshot"),
    [
        (
            "ubuntu-24.04",
            "s390x",
            "ubuntu",
            {"version": "24.04", "codename": "noble"},
            "release-20260801",
        ),
        ("opensuse-leap-16.0", "arm64", "opensuse-leap", {"version": "16.0"}, "Build18.9"),
        ("almalinux-9", "amd64", "almalinux", {"version": "9"}, "9.9-20260901"),
        ("oraclelinux-10", "arm64", "oraclelinux", {"version": "10"}, "OL10U2-b190"),
        ("alpine-3.24", "arm64", "alpine", {"version": "3.24", "variant": "generic"}, "3.24.2-r0"),
        ("archlinux", "amd64", "archlinux", {}, "20260801.560000"),
    ],
)
def test_other_families_age_out_to_their_newer_snapshot(fake, alias, arch, distro, kw, snapshot):
    info = served(fake, alias)[alias]
    image = fu.publish(fake, distro, fu.path_of(distro, arch, snapshot=snapshot, **kw))
    gone(fake, info, arch)
    got = pin(alias, info, arch)
    assert (got.snapshot, got.url) == (snapshot, fake.url(image))
    algorithm = got.expected.algorithms[0]
    assert getattr(got.expected, algorithm) == fake.sha(image, algorithm)
    assert got.source.startswith(fake.base)
    signs = FAMILIES[distro].signed
    assert got.verified_signature is signs
    assert got.signature == ("verified" if signs else "unsigned")
    assert fake.image_bytes_sent() == 0


def test_no_newer_snapshot_is_a_clear_error(fake):
    info = served(fake, "debian-13")["debian-13"]
    fu.publish_snapshot(
        fake, "debian", ["amd64"], version="13", codename="trixie", snapshot="20260601-2496"
    )  # older only
    gone(fake, info, "amd64")
    with pytest.raises(RefreshError) as err:
        pin("debian-13", info, "amd64")
    message = str(err.value)
    assert message.startswith("debian-13 amd64 (pinned 20260712-2537): ")
    assert "no complete snapshot newer than 20260712-2537" in message


def test_only_incomplete_newer_snapshots_say_what_was_missing(fake):
    info = served(fake, "ubuntu-22.04")["ubuntu-22.04"]
    newer = fu.publish_snapshot(
        fake, "ubuntu", ["amd64"], version="22.04", codename="jammy", snapshot="release-20260801"
    )
    fake.drop_sums_line(
        newer["amd64"].rsplit("/", 1)[0] + "/SHA256SUMS", "ubuntu-22.04-server-cloudimg-amd64.img"
    )
    gone(fake, info, "arm64")
    with pytest.raises(RefreshError) as err:
        pin("ubuntu-22.04", info, "arm64")
    message = str(err.value)
    assert "ubuntu-22.04 arm64 (pinned release-20260705)" in message
    assert "release-20260801: no arm64 image in" in message


def test_pinned_snapshot_itself_is_never_returned(fake):
    """The pinned URL answers 404 but its snapshot directory is still listed (with an older
    one beside it): nothing newer, an error."""
    info = served(fake, "debian-11")["debian-11"]
    fu.publish_snapshot(
        fake, "debian", ["amd64"], version="11", codename="bullseye", snapshot="20260601-2496"
    )
    fake.remove(info.arch["amd64"].url[len(fake.base) :])
    with pytest.raises(
        RefreshError, match=r"debian-11 amd64 \(pinned 20260707-2532\): no complete"
    ):
        pin("debian-11", info, "amd64")


def test_an_emptied_directory_lists_no_snapshot(fake):
    info = served(fake, "rocky-9")["rocky-9"]
    fake.remove(info.arch["amd64"].url[len(fake.base) :])
    with pytest.raises(RefreshError, match=r"rocky-9 amd64 \(pinned 9.8-20260525.0\): .* lists no"):
        pin("rocky-9", info, "amd64")


@pytest.mark.parametrize("fault", ["malformed", "missing"])
def test_broken_sums_are_an_error(fake, fault):
    info = served(fake, "centos-stream-9")["centos-stream-9"]
    image = fu.publish(
        fake,
        "centos-stream",
        fu.path_of("centos-stream", "amd64", version="9", snapshot="20260801.0"),
    )
    gone(fake, info, "amd64")
    if fault == "malformed":
        fake.render(image + ".SHA256SUM", b"<html>upstream error</html>\n")
        match = r"centos-stream-9 amd64 \(pinned 20260720.0\): .*SHA256SUM line 1"
    else:
        fake.remove(image + ".SHA256SUM")
        match = r"20260801.0: no CentOS-Stream-GenericCloud-9-20260801.0.x86_64.qcow2.SHA256SUM"
    with pytest.raises(RefreshError, match=match):
        pin("centos-stream-9", info, "amd64")


def test_signature_required_and_missing(fake, tmp_path):
    """A family that signs (Ubuntu's SHA256SUMS.gpg) must have signed the newer snapshot:
    without the signature it is refused, by default and with a keyring alike."""
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(b"")
    info = served(fake, "ubuntu-26.04")["ubuntu-26.04"]
    fake.signer = None
    fu.publish_snapshot(
        fake, "ubuntu", ["amd64"], version="26.04", codename="resolute", snapshot="release-20260801"
    )  # unsigned: no .gpg
    gone(fake, info, "amd64")
    missing = r"release-20260801 refused \(no SHA256SUMS.gpg beside SHA256SUMS"
    with pytest.raises(RefreshError, match=missing):
        pin("ubuntu-26.04", info, "amd64", keyring=keyring)
    # the keyring may come from the settings too, and the shipped keys are the default
    with pytest.raises(RefreshError, match=missing):
        pin("ubuntu-26.04", info, "amd64", settings=SETTINGS.replace(keyring=keyring))
    with pytest.raises(RefreshError, match=missing):
        pin("ubuntu-26.04", info, "amd64", keyring=None)


@pytest.mark.parametrize("fault", ["tampered", "foreign key", "shipped keys"])
def test_a_newer_snapshot_without_a_good_signature_is_refused(fake, tmp_path, fault):
    """One error naming the alias, the pin, the snapshot refused, the file and what gpgv said;
    nothing downloaded."""
    require_tool("gpgv")
    info = served(fake, "ubuntu-24.04")["ubuntu-24.04"]
    if fault == "foreign key":
        stranger = ThrowawayKey.make(tmp_path / "gnupg", "stranger")
        fake.signer = stranger.detach
    newer = fu.publish_snapshot(
        fake, "ubuntu", ["amd64"], version="24.04", codename="noble", snapshot="release-20260801"
    )["amd64"]
    sums = newer.rsplit("/", 1)[0] + "/SHA256SUMS"
    if fault == "tampered":
        fake.tamper(sums, fake.sha256(newer).encode(), b"0" * 64)
    gone(fake, info, "amd64")
    keyring = {"shipped keys": None}.get(fault, shared_key().keyring)
    with pytest.raises(RefreshError) as err:
        pin("ubuntu-24.04", info, "amd64", keyring=keyring)
    message = str(err.value)
    assert message.startswith("ubuntu-24.04 amd64 (pinned release-20260725): no complete")
    assert "release-20260801 refused (bad signature on SHA256SUMS (" in message
    said = {
        "tampered": "gpgv: BAD signature from",
        "foreign key": "which is not in the keyring",
        "shipped keys": "which is not in the shipped key ubuntu-cloudimage",
    }[fault]
    assert said in message and "\n" not in message
    assert fake.image_bytes_sent() == 0


def test_require_signatures_refuses_a_family_that_signs_nothing(fake):
    info = served(fake, "debian-12")["debian-12"]
    fu.publish_snapshot(
        fake, "debian", ["amd64"], version="12", codename="bookworm", snapshot="20260801-2600"
    )
    gone(fake, info, "amd64")
    fake.clear_log()
    strict = SETTINGS.replace(require_signatures=True)
    with pytest.raises(RefreshError) as err:
        pin("debian-12", info, "amd64", settings=strict)
    assert str(err.value) == (
        "debian-12 amd64 (pinned 20260712-2537): Debian publishes no signature for its checksum "
        "files (SHA512SUMS per snapshot (coreutils, SHA-512; not signed upstream)), and "
        "signatures are required (--require-signatures)"
    )
    assert fake.paths() == []  # refused before looking


def test_without_gpgv_an_error_unless_verification_is_off(fake, tmp_path, monkeypatch):
    info = served(fake, "archlinux")["archlinux"]
    image = fu.publish(fake, "archlinux", fu.path_of("archlinux", "amd64", snapshot="20260801.9"))
    gone(fake, info, "amd64")
    monkeypatch.setenv("PATH", str(tmp_path))
    fake.clear_log()
    with pytest.raises(RefreshError) as err:
        pin("archlinux", info, "amd64")
    message = str(err.value)
    assert message.startswith("archlinux amd64 (pinned 20260715.556894): gpgv is not installed")
    assert "apt install gpgv" in message and "PYIMAGECACHE_NO_VERIFY_SIGNATURES=1" in message
    assert fake.paths() == []
    got = pin("archlinux", info, "amd64", settings=SETTINGS.replace(verify_signatures=False))
    assert (got.url, got.signature, got.key) == (fake.url(image), "not-checked", "")
    assert not got.verified_signature
    # a family that signs nothing needs no gpgv
    debian = served(fake, "debian-13")["debian-13"]
    fu.publish_snapshot(
        fake, "debian", ["amd64"], version="13", codename="trixie", snapshot="20260801-2600"
    )
    gone(fake, debian, "amd64")
    assert pin("debian-13", debian, "amd64").signature == "unsigned"


def test_fedora_release_has_no_newer_compose(fake):
    info = served(fake, "fedora-43")["fedora-43"]
    gone(fake, info, "amd64")
    with pytest.raises(
        RefreshError, match=r"fedora-43 amd64 \(pinned 43-1.6\): .* lists no snapshot"
    ):
        pin("fedora-43", info, "amd64")


def test_freebsd_latest_gone_is_an_error(fake):
    info = served(fake, "freebsd-15.1")["freebsd-15.1"]
    gone(fake, info, "arm64")
    with pytest.raises(RefreshError, match=r"freebsd-15.1 arm64 \(pinned 15.1-RELEASE\)"):
        pin("freebsd-15.1", info, "arm64")


def test_refusals_before_any_request(fake):
    info = served(fake, "debian-12")["debian-12"]
    fake.clear_log()
    with pytest.raises(RefreshError, match="offline"):
        pin("debian-12", info, "amd64", settings=SETTINGS.replace(offline=True))
    with pytest.raises(RefreshError, match="no s390x image to replace"):
        pin("debian-12", info, "s390x")
    odd = dataclasses.replace(
        info, arch={"amd64": ArchImage("https://e.org/x.qcow2", sha512="a" * 128)}
    )
    with pytest.raises(RefreshError, match="cannot tell the upstream root"):
        pin("debian-12", odd, "amd64")
    with pytest.raises(RefreshError, match="unknown distro 'gentoo'"):
        pin("x", dataclasses.replace(info, distro="gentoo"), "amd64")
    with pytest.raises(RefreshError, match="is not a debian snapshot name"):
        pin("x", dataclasses.replace(info, snapshot="latest"), "amd64")
    assert fake.paths() == []


def test_dead_server_is_a_refresh_error(fake):
    info = served(fake, "debian-12")["debian-12"]
    fake.stop()
    with pytest.raises(RefreshError, match=r"debian-12 amd64 \(pinned 20260712-2537\): .*"):
        pin("debian-12", info, "amd64")


def test_the_api_the_lead_calls() -> None:
    import inspect

    params = inspect.signature(newer_pin).parameters
    assert list(params) == ["alias", "info", "arch", "settings", "keyring"]
    assert params["settings"].kind is params["keyring"].kind is inspect.Parameter.KEYWORD_ONLY
    assert [f.name for f in dataclasses.fields(FallbackPin)] == [
        "snapshot",
        "url",
        "expected",
        "verified_signature",
        "source",
        "signature",
        "key",
        "fmt",
    ]
