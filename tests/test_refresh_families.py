"""One resolver per family against its fake upstream layout (tests/fakeupstreams): the newest
complete snapshot is pinned with the digest upstream's checksum file gives, decoys (moving
pointers, other variants and arches, sidecars) never are, an incomplete newest snapshot falls
back, per-arch builds move on their own, and no image byte is transferred."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import fakeupstreams as fu
import pytest
from fakeupstream import FakeUpstream

from pyimagecache.catalog import encode_document
from pyimagecache.errors import RefreshError
from pyimagecache.refresh import check_document, refresh_catalog

NET = {"retries": 0, "timeout": 5.0}

#: alias -> (distro, path_of keywords, [newer snapshot, newest snapshot]); every arch the
#: alias lists is published in both.
BUMPS: Dict[str, Tuple[str, Dict[str, str], List[str]]] = {
    "debian-13": (
        "debian",
        {"version": "13", "codename": "trixie"},
        ["20260801-2600", "20260801-2601"],
    ),
    "ubuntu-26.04": (
        "ubuntu",
        {"version": "26.04", "codename": "resolute"},
        ["release-20260801", "release-20260801.1"],
    ),
    "centos-stream-10": ("centos-stream", {"version": "10"}, ["20260801.0", "20260801.1"]),
    "almalinux-10": ("almalinux", {"version": "10"}, ["10.2-20260801.0", "10.3-20260901.0"]),
    "almalinux-9": ("almalinux", {"version": "9"}, ["9.8-20260801", "9.10-20261001"]),
    "rocky-9": ("rocky", {"version": "9"}, ["9.8-20260801.0", "9.9-20260901.0"]),
    "almalinux-8": ("almalinux", {"version": "8"}, ["8.10-20260801", "8.10-20260901"]),
    "rocky-8": ("rocky", {"version": "8"}, ["8.10-20260801.0", "8.10-20260901.0"]),
    "ubuntu-20.04": (
        "ubuntu",
        {"version": "20.04", "codename": "focal"},
        ["release-20260801", "release-20260801.1"],
    ),
    "cirros-0.6": ("cirros", {"version": "0.6"}, ["0.6.4", "0.6.10"]),
    "alpine-3.24": (
        "alpine",
        {"version": "3.24", "variant": "generic"},
        ["3.24.2-r0", "3.24.2-r1"],
    ),
    "archlinux": ("archlinux", {}, ["20260801.560000", "20260801.560100"]),
    "amazonlinux-2023": (
        "amazonlinux",
        {"version": "2023"},
        ["2023.12.20261001.0", "2023.13.20261101.0"],
    ),
}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(image_size=8 * 1024) as server:
        yield server


def catalog_for(fake: FakeUpstream, tmp_path: Path, *aliases: str) -> Tuple[Path, Dict[str, Any]]:
    doc = fu.seed(fake, aliases=aliases)
    path = tmp_path / "catalog.json"
    path.write_bytes(encode_document(doc))
    return path, doc


def refresh(fake: FakeUpstream, path: Path, **kw: Any) -> Tuple[Any, List[str], Dict[str, Any]]:
    lines: List[str] = []
    fake.clear_log()
    kw.setdefault("keyring", fake.keyring)  # the fake's throwaway signing key
    result = refresh_catalog(
        path, roots=fake.roots(), log=lines.append, network=NET, today="2026-12-01", **kw
    )
    return result, lines, json.loads(path.read_bytes())


def _publish(fake: FakeUpstream, alias: str, arches: List[str], snapshot: str) -> Dict[str, str]:
    distro, kw, _ = BUMPS[alias]
    return fu.publish_snapshot(fake, distro, arches, snapshot=snapshot, **kw)


def _assert_pinned(fake: FakeUpstream, entry: Dict[str, Any], images: Dict[str, str]) -> None:
    for arch, path in images.items():
        slot = entry["arch"][arch]
        algorithm = "sha512" if entry["distro"] in ("debian", "alpine") else "sha256"
        assert slot["url"] == fake.url(path)
        assert {k: v for k, v in slot.items() if k.startswith("sha")} == {
            algorithm: fake.sha(path, algorithm)
        }


@pytest.mark.parametrize("alias", sorted(BUMPS))
def test_newest_complete_snapshot_is_pinned_from_the_checksum_file(fake, tmp_path, alias):
    path, doc = catalog_for(fake, tmp_path, alias)
    arches = list(doc[alias]["arch"])
    newer, newest = BUMPS[alias][2]
    _publish(fake, alias, arches, newer)
    images = _publish(fake, alias, arches, newest)
    result, lines, after = refresh(fake, path)
    assert result.changed == [alias]
    assert after[alias]["snapshot"] == newest
    _assert_pinned(fake, after[alias], images)
    assert fake.image_bytes_sent() == 0
    # the refreshed pin obeys every catalog rule (an https-only catalog aside)
    real = {
        alias: json.loads(
            json.dumps(after[alias]).replace(
                fake.root(after[alias]["distro"]), fu.REAL_ROOTS[after[alias]["distro"]]
            )
        )
    }
    assert check_document(real) == []


@pytest.mark.parametrize("alias", sorted(BUMPS))
def test_incomplete_newest_snapshot_falls_back(fake, tmp_path, alias):
    path, doc = catalog_for(fake, tmp_path, alias)
    arches = list(doc[alias]["arch"])
    newer, newest = BUMPS[alias][2]
    good = _publish(fake, alias, arches, newer)
    bad = _publish(fake, alias, arches, newest)
    fake.remove(bad[arches[-1]])
    result, lines, after = refresh(fake, path)
    assert after[alias]["snapshot"] == newer
    _assert_pinned(fake, after[alias], good)
    assert any(line.startswith(f"fallback {alias}: {newest} is incomplete") for line in lines)


def test_debian_keeps_the_pinned_variant_and_defaults_by_arch(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "debian-13")
    images = fu.publish_snapshot(
        fake,
        "debian",
        ["amd64", "arm64", "ppc64le", "riscv64"],
        version="13",
        codename="trixie",
        snapshot="20260801-2600",
    )
    _, _, after = refresh(fake, path)
    urls = {arch: slot["url"] for arch, slot in after["debian-13"]["arch"].items()}
    assert "-genericcloud-amd64-" in urls["amd64"] and "-generic-riscv64-" in urls["riscv64"]
    assert "-generic-ppc64el-" in urls["ppc64le"] and urls == {
        a: fake.url(p) for a, p in images.items()
    }


def test_fedora_release_keeps_its_pin_and_a_respin_is_clear_signed_unverified(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "fedora-44")
    result, lines, after = refresh(fake, path)
    assert result.changed == [] and "resolved fedora-44 -> 44-1.7 (unchanged)" in lines
    assert not any(p.endswith("CHECKSUM") for p in fake.paths())  # nothing to read
    # riscv64 has its own compose; a newer one moves riscv64 alone
    riscv = fu.publish_snapshot(fake, "fedora", ["riscv64"], version="44", snapshot="44-20260901.0")
    result, lines, after = refresh(fake, path, verify_signatures=False)
    entry = after["fedora-44"]
    assert result.changed == ["fedora-44"] and entry["snapshot"] == "44-1.7"
    assert entry["arch"]["riscv64"]["snapshot"] == "44-20260901.0"
    assert entry["arch"]["riscv64"]["url"] == fake.url(riscv["riscv64"])
    assert entry["arch"]["amd64"] == doc["fedora-44"]["arch"]["amd64"]
    assert any(
        line.startswith("unverified ")
        and "CHECKSUM: clear-signed" in line
        and "NOT checked" in line
        for line in lines
    ), lines


@pytest.mark.parametrize(
    ("alias", "distro", "moves", "version"),
    [
        ("oraclelinux-9", "oraclelinux", {"amd64": "OL9U8-b300", "arm64": "OL9U8-b190"}, "9"),
        ("opensuse-leap-16.0", "opensuse-leap", {"arm64": "Build18.9"}, "16.0"),
    ],
)
def test_per_arch_builds_move_one_by_one(fake, tmp_path, alias, distro, moves, version):
    path, doc = catalog_for(fake, tmp_path, alias)
    images = {
        arch: fu.publish(fake, distro, fu.path_of(distro, arch, version=version, snapshot=s))
        for arch, s in moves.items()
    }
    result, lines, after = refresh(fake, path)
    entry = after[alias]
    assert result.changed == [alias]
    for arch, slot in entry["arch"].items():
        if arch in moves:
            assert slot["url"] == fake.url(images[arch])
            own = moves[arch]
        else:
            assert slot == doc[alias]["arch"][arch]
            own = slot.get("snapshot", doc[alias]["snapshot"])
        assert (slot.get("snapshot") or entry["snapshot"]) == own
    assert entry["snapshot"] == moves.get("amd64", doc[alias]["snapshot"])


def test_oracle_manifest_naming_an_older_build_keeps_the_pin(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "oraclelinux-8")
    fu.publish(fake, "oraclelinux", fu.path_of("oraclelinux", "amd64", snapshot="OL8U10-b200"))
    result, lines, after = refresh(fake, path)
    assert result.changed == [] and after == doc


def test_freebsd_latest_is_rechecked_and_a_republished_image_is_an_error(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "freebsd-15.1")
    before = path.read_bytes()
    result, lines, _ = refresh(fake, path)
    assert result.changed == []
    assert any(p.endswith("/Latest/CHECKSUM.SHA256") for p in fake.paths())
    image = fu.to_fake(fake, "freebsd", fu.embedded()["freebsd-15.1"]["arch"]["arm64"]["url"])
    fake.set_file(image, b"rebuilt")
    fake.refresh_sums([image])
    with pytest.raises(
        RefreshError,
        match=r"freebsd-15.1: .*re-published 15.1-RELEASE under "
        r"/Latest/",
    ):
        refresh(fake, path)
    assert path.read_bytes() == before


def test_amazon_linux_keeps_its_kernel_line(fake, tmp_path):
    path, _ = catalog_for(fake, tmp_path, "amazonlinux-2023")
    image = fu.path_of("amazonlinux", "amd64", snapshot="2023.12.20261001.0")
    fu.publish(fake, "amazonlinux", image)  # a kernel-6.12 image beside it, as a decoy
    assert image.replace("kernel-6.1-", "kernel-6.12-") in fake.files
    _, _, after = refresh(fake, path)
    assert after["amazonlinux-2023"]["arch"]["amd64"]["url"] == fake.url(image)


def test_alpine_keeps_the_pinned_vendor(fake, tmp_path):
    path, _ = catalog_for(fake, tmp_path, "alpine-3.21")  # nocloud_
    images = fu.publish_snapshot(
        fake, "alpine", version="3.21", snapshot="3.21.8-r0", variant="generic"
    )  # nocloud_ published beside, as a decoy
    _, _, after = refresh(fake, path)
    urls = [slot["url"] for slot in after["alpine-3.21"]["arch"].values()]
    assert all("/nocloud_alpine-3.21.8-" in u for u in urls)
    assert fake.url(images["amd64"]) not in urls


def test_moving_pointers_newer_than_the_pin_are_never_taken(fake, tmp_path):
    """latest/, daily/, current/, release/ and -latest names hold newer files than the pin;
    with no newer dated snapshot, every alias is unchanged."""
    path, doc = catalog_for(
        fake,
        tmp_path,
        "debian-12",
        "ubuntu-24.04",
        "centos-stream-9",
        "almalinux-9",
        "rocky-10",
        "archlinux",
        "alpine-3.22",
    )
    for p in [p for p in fake.files if "latest" in p.lower() or "/current/" in p]:
        fake.set_file(p, b"newer")
    result, _, after = refresh(fake, path)
    assert result.changed == [] and after == doc
