"""The families and releases added for breadth (issue 19), against their fake upstreams:
AlmaLinux Kitten (a build per arch and day), openSUSE Tumbleweed (rolling, one snapshot kept,
pins through ``tumbleweed/``), CirrOS (a directory per release, aliases per series), and the
RHEL-8 clones and older/newer Ubuntu releases on the existing resolvers. Decoys never move a
pin, a pin never moves backwards, and no image byte is transferred."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, Iterator

import fakeupstreams as fu
import pytest
from fakeupstream import FakeUpstream
from test_fallback import SETTINGS, gone, pin, served
from test_refresh_families import catalog_for, refresh

from pyimagecache.catalog import encode_document
from pyimagecache.errors import RefreshError
from pyimagecache.refresh import check_document
from pyimagecache.refresh.families import FAMILIES

NEW_FAMILIES = ("almalinux-kitten", "opensuse-tumbleweed", "cirros")


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(image_size=8 * 1024) as server:
        yield server


def real_roots(fake: FakeUpstream, entry: Dict[str, Any]) -> Dict[str, Any]:
    """``entry`` with the fake's root replaced by the family's real one (for catalog check)."""
    distro = entry["distro"]
    text = json.dumps(entry).replace(fake.root(distro), fu.REAL_ROOTS[distro])
    return dict(json.loads(text))


def digest(fake: FakeUpstream, path: str) -> Dict[str, str]:
    return {"url": fake.url(path), "sha256": fake.sha256(path)}


def pins_of(slot: Dict[str, Any]) -> Dict[str, str]:
    return {k: v for k, v in slot.items() if k in ("url", "sha256")}


# -- the embedded catalog -------------------------------------------------------------------------


def test_embedded_catalog_reaches_the_breadth_bar():
    doc = fu.embedded()
    families = {entry["distro"] for entry in doc.values()}
    assert len(doc) >= 34 and len(families) >= 13
    assert set(NEW_FAMILIES) <= families
    assert check_document(doc) == []


# -- AlmaLinux Kitten -----------------------------------------------------------------------------


def test_kitten_arches_move_one_by_one(fake, tmp_path):
    """Each arch is built on its own day: each moves to its own newest build, or keeps its pin
    when upstream has nothing newer for it."""
    path, doc = catalog_for(fake, tmp_path, "almalinux-kitten-10")
    before = doc["almalinux-kitten-10"]["arch"]
    kw = {"version": "10"}
    new = fu.publish_snapshot(
        fake, "almalinux-kitten", ["amd64", "arm64"], snapshot="20260801.0", **kw
    )
    new.update(
        fu.publish_snapshot(fake, "almalinux-kitten", ["s390x"], snapshot="20260802.0", **kw)
    )
    fu.publish_snapshot(fake, "almalinux-kitten", ["riscv64"], snapshot="20260201.0", **kw)  # older
    result, lines, after = refresh(fake, path)
    entry = after["almalinux-kitten-10"]
    assert result.changed == ["almalinux-kitten-10"] and entry["snapshot"] == "20260801.0"
    for arch, image in new.items():
        assert pins_of(entry["arch"][arch]) == digest(fake, image)
    assert entry["arch"]["s390x"]["snapshot"] == "20260802.0"
    assert "snapshot" not in entry["arch"]["amd64"] and "snapshot" not in entry["arch"]["arm64"]
    for arch in ("ppc64le", "riscv64"):  # nothing newer: pin and own snapshot kept
        assert pins_of(entry["arch"][arch]) == pins_of(before[arch])
        assert entry["arch"][arch]["snapshot"] == before[arch]["snapshot"]
    assert fake.image_bytes_sent() == 0
    assert check_document({"almalinux-kitten-10": real_roots(fake, entry)}) == []


def test_kitten_decoys_of_a_newer_build_are_not_the_build(fake, tmp_path):
    """The -latest name, OpenNebula and x86_64_v2 images of a newer build, without the build's
    own GenericCloud image, move nothing."""
    path, doc = catalog_for(fake, tmp_path, "almalinux-kitten-10")
    image = fu.publish(
        fake,
        "almalinux-kitten",
        fu.path_of("almalinux-kitten", "amd64", version="10", snapshot="20260801.0"),
    )
    fake.remove(image)
    assert any(p.endswith("20260801.0.x86_64_v2.qcow2") for p in fake.files)
    for p in [p for p in fake.files if "-latest." in p]:
        fake.set_file(p, b"newer")
    result, _, after = refresh(fake, path)
    assert result.changed == [] and after == doc


def test_kitten_build_without_its_checksum_line_is_skipped_for_that_arch(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "almalinux-kitten-10")
    arches = list(doc["almalinux-kitten-10"]["arch"])
    new = fu.publish_snapshot(fake, "almalinux-kitten", arches, version="10", snapshot="20260801.0")
    riscv = new["riscv64"]
    fake.drop_sums_line(riscv.rsplit("/", 1)[0] + "/CHECKSUM", riscv.rsplit("/", 1)[1])
    _, lines, after = refresh(fake, path)
    entry = after["almalinux-kitten-10"]
    assert entry["snapshot"] == "20260801.0"
    assert pins_of(entry["arch"]["riscv64"]) == pins_of(
        doc["almalinux-kitten-10"]["arch"]["riscv64"]
    )
    assert entry["arch"]["riscv64"]["snapshot"] == "20260302.0"
    assert any(
        line.startswith("fallback almalinux-kitten-10 riscv64: 20260801.0 is incomplete")
        and "CHECKSUM has no line for" in line
        for line in lines
    ), lines


# -- openSUSE Tumbleweed -------------------------------------------------------------------------


def _rolled(fake: FakeUpstream, snapshot: str, arch: str = "amd64") -> str:
    """Upstream publishes ``snapshot`` and, as Tumbleweed does, removes the older snapshots'
    files from the directory (the undated moving name is re-pointed at the new one)."""
    image = fu.path_of("opensuse-tumbleweed", arch, snapshot=snapshot)
    directory = image.rsplit("/", 1)[0] + "/"
    for p in list(fake.files):
        if p.startswith(directory) and "-Snapshot" in p and f"Snapshot{snapshot}" not in p:
            fake.remove(p)
    fu.publish(fake, "opensuse-tumbleweed", image)
    undated = directory + f"openSUSE-Tumbleweed-Minimal-VM.{fu.RPM[arch]}-Cloud.qcow2"
    fake.set_file(undated, fake.files[image])
    fake.refresh_sums([undated])
    return image


def test_tumbleweed_follows_the_rolling_snapshot(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "opensuse-tumbleweed")
    image = _rolled(fake, "20261201")
    result, lines, after = refresh(fake, path)
    entry = after["opensuse-tumbleweed"]
    assert result.changed == ["opensuse-tumbleweed"] and entry["snapshot"] == "20261201"
    assert pins_of(entry["arch"]["amd64"]) == digest(fake, image)
    assert "resolved opensuse-tumbleweed -> 20261201 (was 20240629)" in lines
    assert fake.image_bytes_sent() == 0
    # the pin goes through tumbleweed/ (the family's only location) and passes catalog check
    assert check_document({"opensuse-tumbleweed": real_roots(fake, entry)}) == []
    # nothing newer: unchanged, the moving undated name is never pinned
    result, _, again = refresh(fake, path)
    assert result.changed == [] and again == after


def test_tumbleweed_snapshot_without_its_sha256_is_incomplete(fake, tmp_path):
    path, _ = catalog_for(fake, tmp_path, "opensuse-tumbleweed")
    kw: Dict[str, str] = {}
    good = fu.publish_snapshot(fake, "opensuse-tumbleweed", ["amd64"], snapshot="20261130", **kw)
    bad = fu.publish_snapshot(fake, "opensuse-tumbleweed", ["amd64"], snapshot="20261201", **kw)
    fake.remove(bad["amd64"] + ".sha256")
    _, lines, after = refresh(fake, path)
    assert pins_of(after["opensuse-tumbleweed"]["arch"]["amd64"]) == digest(fake, good["amd64"])
    assert any(
        line.startswith("fallback opensuse-tumbleweed: 20261201 is incomplete (no ")
        and line.endswith(".sha256); trying the next newest")
        for line in lines
    ), lines


def test_tumbleweed_aarch64_comes_from_ports_on_its_own_schedule(fake, tmp_path):
    doc = fu.seed(fake, aliases=["opensuse-tumbleweed"])
    arm = fu.publish(
        fake, "opensuse-tumbleweed", fu.path_of("opensuse-tumbleweed", "arm64", snapshot="20261120")
    )
    doc["opensuse-tumbleweed"]["arch"]["arm64"] = {
        "url": fake.url(arm),
        "sha256": fake.sha256(arm),
        "snapshot": "20261120",
    }
    path = tmp_path / "catalog.json"
    path.write_bytes(encode_document(doc))
    x86 = _rolled(fake, "20261201")
    arm_new = _rolled(fake, "20261203", "arm64")
    _, _, after = refresh(fake, path)
    entry = after["opensuse-tumbleweed"]
    assert entry["snapshot"] == "20261201"
    assert pins_of(entry["arch"]["amd64"]) == digest(fake, x86)
    assert pins_of(entry["arch"]["arm64"]) == digest(fake, arm_new)
    assert entry["arch"]["arm64"]["snapshot"] == "20261203"
    assert "/ports/aarch64/tumbleweed/appliances/" in entry["arch"]["arm64"]["url"]
    assert check_document({"opensuse-tumbleweed": real_roots(fake, entry)}) == []


def test_tumbleweed_with_a_keyring_needs_the_detached_signature(fake, tmp_path):
    """Upstream signs each .sha256 (.sha256.asc): with a keyring that did not sign it, the
    snapshot is no candidate."""
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(b"")
    info = served(fake, "opensuse-tumbleweed")["opensuse-tumbleweed"]
    _rolled(fake, "20261201")
    with pytest.raises(
        RefreshError,
        match=r"20261201 refused \(bad signature on .*Snapshot20261201\.qcow2\.sha256 .*not in "
        r"the keyring",
    ):
        pin("opensuse-tumbleweed", info, "amd64", keyring=keyring)


# -- CirrOS ------------------------------------------------------------------------------------


def test_cirros_moves_within_its_release_series_only(fake, tmp_path):
    path, _ = catalog_for(fake, tmp_path, "cirros-0.5", "cirros-0.6")
    six = fu.publish_snapshot(fake, "cirros", version="0.6", snapshot="0.6.10")
    fu.publish_snapshot(fake, "cirros", version="0.6", snapshot="0.6.4")
    five = fu.publish_snapshot(fake, "cirros", version="0.5", snapshot="0.5.3")
    fu.publish_snapshot(fake, "cirros", version="0.7", snapshot="0.7.0")  # another series
    assert any("/0.6.11~pre1/" in p for p in fake.files)  # a pre-release, newer by its digits
    result, _, after = refresh(fake, path)
    assert sorted(result.changed) == ["cirros-0.5", "cirros-0.6"]
    assert (
        after["cirros-0.6"]["snapshot"] == "0.6.10" and after["cirros-0.5"]["snapshot"] == "0.5.3"
    )
    for alias, images in (("cirros-0.6", six), ("cirros-0.5", five)):
        for arch, image in images.items():
            assert pins_of(after[alias]["arch"][arch]) == digest(fake, image)
        assert check_document({alias: real_roots(fake, after[alias])}) == []
    assert fake.image_bytes_sent() == 0


def test_cirros_prerelease_and_other_arches_never_move_a_pin(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "cirros-0.6")
    for p in [p for p in fake.files if "~pre" in p or "-arm-" in p]:
        fake.set_file(p, b"newer")
    result, lines, after = refresh(fake, path)
    assert result.changed == [] and after == doc
    assert "resolved cirros-0.6 -> 0.6.3 (unchanged)" in lines


# -- RHEL-8 clones on the existing resolvers ---------------------------------------------------


def test_rocky8_pointer_names_and_major_directory_are_never_taken(fake, tmp_path):
    path, doc = catalog_for(fake, tmp_path, "rocky-8", "almalinux-8")
    el8 = [p for p in fake.files if p.endswith("/Rocky-8-GenericCloud.latest.x86_64.qcow2")]
    assert el8 and all("/8.10/" in p for p in el8)
    for p in [p for p in fake.files if ".latest." in p or "-latest." in p or "/8/" in p]:
        fake.set_file(p, b"newer")
    result, _, after = refresh(fake, path)
    assert result.changed == [] and after == doc


def test_rocky8_moves_to_a_newer_minor_directory(fake, tmp_path):
    """A 8.11 directory (should upstream ever publish one) beats 8.10, as for 9 and 10."""
    path, _ = catalog_for(fake, tmp_path, "rocky-8")
    images = fu.publish_snapshot(fake, "rocky", version="8", snapshot="8.11-20270101.0")
    _, _, after = refresh(fake, path)
    assert after["rocky-8"]["snapshot"] == "8.11-20270101.0"
    for arch, image in images.items():
        assert pins_of(after["rocky-8"]["arch"][arch]) == digest(fake, image)


# -- aged-out pins fall back on every new family and release ------------------------------------


@pytest.mark.parametrize(
    ("alias", "arch", "distro", "kw", "snapshot"),
    [
        ("almalinux-kitten-10", "riscv64", "almalinux-kitten", {"version": "10"}, "20260401.0"),
        ("opensuse-tumbleweed", "amd64", "opensuse-tumbleweed", {}, "20261201"),
        ("cirros-0.6", "arm64", "cirros", {"version": "0.6"}, "0.6.4"),
        ("almalinux-8", "ppc64le", "almalinux", {"version": "8"}, "8.10-20260801"),
        ("rocky-8", "arm64", "rocky", {"version": "8"}, "8.10-20260801.0"),
        (
            "ubuntu-20.04",
            "s390x",
            "ubuntu",
            {"version": "20.04", "codename": "focal"},
            "release-20260801",
        ),
        (
            "ubuntu-25.10",
            "riscv64",
            "ubuntu",
            {"version": "25.10", "codename": "questing"},
            "release-20260801",
        ),
    ],
)
def test_aged_out_pin_falls_back_to_the_newer_snapshot(fake, alias, arch, distro, kw, snapshot):
    info = served(fake, alias)[alias]
    image = fu.publish(fake, distro, fu.path_of(distro, arch, snapshot=snapshot, **kw))
    gone(fake, info, arch)
    got = pin(alias, info, arch)
    assert (got.snapshot, got.url) == (snapshot, fake.url(image))
    assert got.expected.sha256 == fake.sha256(image)
    # Signed families are verified (the fake upstream signs with its own key, passed as the
    # keyring a user would pass); CirrOS publishes no signature.
    assert got.signature == ("unsigned" if FAMILIES[distro].unsigned else "verified")
    assert got.source.startswith(fake.base) and fake.image_bytes_sent() == 0


def test_tumbleweed_fallback_with_nothing_newer_is_a_clear_error(fake):
    info = served(fake, "opensuse-tumbleweed")["opensuse-tumbleweed"]
    gone(fake, info, "amd64")
    with pytest.raises(RefreshError, match=r"opensuse-tumbleweed amd64 \(pinned 20240629\): "):
        pin("opensuse-tumbleweed", info, "amd64", settings=SETTINGS)


# -- catalog check knows the new families' URL rules -------------------------------------------


def _broken(alias: str, arch: str, old: str, new: str) -> Dict[str, Any]:
    entry = copy.deepcopy(fu.embedded()[alias])
    url = entry["arch"][arch]["url"]
    assert old in url, (old, url)
    entry["arch"][arch]["url"] = url.replace(old, new)
    return {alias: entry}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (  # the undated, moving Tumbleweed name
            _broken("opensuse-tumbleweed", "amd64", "-1.0.0-Cloud-Snapshot20240629", "-Cloud"),
            "does not have the shape of openSUSE Tumbleweed image URLs",
        ),
        (  # tumbleweed/ is allowed for Tumbleweed only
            _broken("opensuse-leap-16.0", "amd64", "/leap/", "/tumbleweed/"),
            "goes through the moving pointer /tumbleweed/",
        ),
        (
            _broken("almalinux-kitten-10", "amd64", "-10-20260501.0.x86_64", "-10-latest.x86_64"),
            "goes through the moving pointer",
        ),
        (
            _broken("almalinux-kitten-10", "arm64", "/cloud/aarch64/", "/cloud/x86_64/"),
            "does not have the shape of AlmaLinux Kitten image URLs",
        ),
        (_broken("cirros-0.6", "amd64", "0.6.3", "0.7.0"), "is version '0.7', not '0.6'"),
        (_broken("cirros-0.6", "arm64", "-aarch64-", "-arm-"), "does not have the shape of CirrOS"),
        (
            _broken("rocky-8", "amd64", "GenericCloud-Base-8.10-20240528.0", "GenericCloud.latest"),
            "goes through the moving pointer",
        ),
    ],
)
def test_check_knows_the_new_url_rules(doc, expected):
    problems = check_document(doc)
    assert any(expected in p for p in problems), problems
