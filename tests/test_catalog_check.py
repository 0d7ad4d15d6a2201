"""catalog check: the embedded catalog passes; each rule catches its own breakage."""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from typing import Any, Callable, Dict

import pytest

from pyimagecache.catalog import decode_document
from pyimagecache.errors import CatalogError
from pyimagecache.refresh import check_document

Doc = Dict[str, Any]


def embedded() -> Doc:
    data: Doc = json.loads(files("pyimagecache").joinpath("catalog.json").read_bytes())
    return data


def test_embedded_catalog_passes():
    doc = embedded()
    assert len(doc) >= 24 and len({e["distro"] for e in doc.values()}) >= 11
    assert check_document(doc) == []


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        *parents, last = path.split("/")
        node = doc
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value

    return apply


def _url(path: str, old: str, new: str) -> Callable[[Doc], None]:
    """Replace ``old`` by ``new`` in the url at ``path`` (alias/arch/<arch>)."""

    def apply(doc: Doc) -> None:
        alias, _, arch = path.split("/")
        image = doc[alias]["arch"][arch]
        assert old in image["url"], (old, image["url"])
        image["url"] = image["url"].replace(old, new)

    return apply


_DELETE = object()
_D12 = "debian-12"
_U24 = "ubuntu-24.04"

BREAKAGES = {
    "no amd64": (_set("alpine-3.23/arch/amd64", _DELETE), "no amd64 image"),
    "no arm64 where the family builds it": (_set(f"{_D12}/arch/arm64", _DELETE), "no arm64 image"),
    "arm64 where upstream builds none": (
        lambda d: d["archlinux"]["arch"].update(arm64=dict(d["archlinux"]["arch"]["amd64"])),
        "Arch Linux publishes no arm64 image",
    ),
    "arch the family does not publish": (
        lambda d: d["oraclelinux-9"]["arch"].update(s390x=d["oraclelinux-9"]["arch"]["amd64"]),
        "Oracle Linux publishes no s390x image",
    ),
    "unknown arch": (_set(f"{_D12}/arch/mips64", {"url": "x", "sha256": "y"}), "unknown arch"),
    "short sha256": (_set("fedora-44/arch/amd64/sha256", "ab" * 31), "64 lowercase hex"),
    "short sha512": (_set(f"{_D12}/arch/amd64/sha512", "ab" * 63), "128 lowercase hex"),
    "uppercase digest": (_set(f"{_U24}/arch/arm64/sha256", "AB" * 32), "64 lowercase hex"),
    "no digest": (_set(f"{_D12}/arch/amd64/sha512", _DELETE), "needs a sha256 or sha512"),
    "http url": (_url(f"{_D12}/arch/amd64", "https://", "http://"), "must be https"),
    "url outside snapshot": (
        _url(f"{_D12}/arch/amd64", "20260712-2537", "20260601-2496"),
        "is not inside the snapshot '20260712-2537'",
    ),
    "latest directory": (
        _url(f"{_D12}/arch/amd64", "/20260712-2537/", "/latest/20260712-2537/"),
        "moving pointer /latest/",
    ),
    "Latest outside FreeBSD": (
        _url("rocky-9/arch/amd64", "/images/x86_64/", "/images/x86_64/Latest/"),
        "moving pointer /Latest/",
    ),
    "latest file name": (
        _url("centos-stream-9/arch/amd64", "9-20260720.0", "9-latest"),
        "moving pointer /CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2/",
    ),
    "bare release": (
        _url(f"{_U24}/arch/amd64", "/release-20260725/", "/release/release-20260725/"),
        "moving pointer /release/",
    ),
    "not the family's shape": (
        _url(f"{_D12}/arch/amd64", ".qcow2", ".raw"),
        "does not have the shape of Debian image URLs",
    ),
    "the major directory of a minor release": (
        _url("almalinux-9/arch/amd64", "/almalinux/9.8/", "/almalinux/9/"),
        "does not have the shape of AlmaLinux image URLs",
    ),
    "wrong arch spelling": (
        _url(f"{_U24}/arch/ppc64le", "cloudimg-ppc64el", "cloudimg-ppc64le"),
        "is the ppc64le image, not ppc64el",
    ),
    "another arch's image": (
        _url("freebsd-15.1/arch/amd64", "/amd64/Latest/", "/aarch64/Latest/"),
        "is not where FreeBSD keeps it",
    ),
    "version mismatch": (_set("fedora-44/version", "45"), "is version '44', not '45'"),
    "codename mismatch": (_set("ubuntu-22.04/codename", "noble"), "is codename 'jammy'"),
    "unknown distro": (_set(f"{_D12}/distro", "gentoo"), "unknown distro 'gentoo'"),
    "debian without codename": (_set(f"{_D12}/codename", _DELETE), "needs a 'codename'"),
    "unsafe cache name": (_set(f"{_D12}/snapshot", "../20260601-2496"), "not a safe file name"),
    "undated snapshot": (_set(f"{_U24}/snapshot", "release"), "not a ubuntu snapshot name"),
    "family snapshot rule": (
        _set("oraclelinux-9/snapshot", "OL9-b293"),
        "not a oraclelinux snapshot name (OL<M>U<m>-b<build>)",
    ),
    "arch snapshot rule": (
        _set("fedora-44/arch/riscv64/snapshot", "20260604.0"),
        "not a fedora snapshot name",
    ),
    "arch snapshot same as the alias's": (
        _set("oraclelinux-9/arch/arm64/snapshot", "OL9U8-b293"),
        "is the alias's own; drop it",
    ),
    "bad bumped_at": (_set(f"{_D12}/bumped_at", "10/06/2026"), "not a YYYY-MM-DD date"),
    "unknown field": (_set(f"{_D12}/sha1", "x"), "unknown field 'sha1'"),
    "unknown arch field": (_set(f"{_D12}/arch/amd64/size", 1), "unknown field 'size'"),
    "same url twice": (
        lambda d: d[_D12]["arch"]["arm64"].update(url=d[_D12]["arch"]["amd64"]["url"]),
        "same url as",
    ),
}


def test_decided_exemptions_pass():
    """FreeBSD pins go through Latest/; Amazon Linux, openSUSE Leap 15.6 and Arch Linux pin
    amd64 alone; arches keep their own snapshots where upstream built them apart."""
    doc = embedded()
    assert "/Latest/" in doc["freebsd-15.1"]["arch"]["amd64"]["url"]
    assert list(doc["amazonlinux-2023"]["arch"]) == ["amd64"]
    assert list(doc["opensuse-leap-15.6"]["arch"]) == ["amd64"]
    assert list(doc["archlinux"]["arch"]) == ["amd64"]
    assert doc["debian-11"]["arch"]["ppc64le"]["snapshot"] == "20250703-2162"
    assert check_document(doc) == []
    doc["opensuse-leap-16.0"]["arch"].pop("arm64")  # optional for the family
    assert check_document(doc) == []


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_rule_is_caught(name):
    breaker, expected = BREAKAGES[name]
    doc = embedded()
    breaker(doc)
    problems = check_document(doc)
    assert any(expected in p for p in problems), problems


def test_all_problems_are_listed_at_once():
    doc = embedded()
    for name in ("no arm64 where the family builds it", "unknown distro", "bare release"):
        BREAKAGES[name][0](doc)
    # "unknown distro" on debian-12 also hides its snapshot-format rule; three at least
    assert len(check_document(doc)) >= 3


def test_not_an_object():
    assert check_document([]) == ["top level must be an object of aliases, got list"]
    assert check_document({}) == ["no aliases"]


def test_duplicate_keys_are_refused():
    raw = b'{"debian-12": {"distro": "debian", "distro": "ubuntu"}}'
    with pytest.raises(CatalogError, match="duplicate key 'distro'"):
        decode_document(raw, "x.json")


def test_cli_check(tmp_path, capsys):
    from pyimagecache.cli import main

    assert main(["catalog", "check"]) == 0
    good = tmp_path / "good.json"
    good.write_text(json.dumps(embedded()))
    assert main(["catalog", "check", "--catalog", str(good)]) == 0
    doc = copy.deepcopy(embedded())
    BREAKAGES["no arm64 where the family builds it"][0](doc)
    BREAKAGES["short sha256"][0](doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["catalog", "check", "--catalog", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "no arm64 image" in err and "64 lowercase hex" in err and "2 problem(s)" in err


def test_readme_lists_every_family():
    from pathlib import Path

    from pyimagecache.refresh.families import FAMILIES

    readme = Path(__file__).resolve().parent.parent / "README.md"
    section = readme.read_text().split("## Catalog families", 1)[1].split("\n## ", 1)[0]
    for distro, layout in FAMILIES.items():
        assert f"| `{distro}` |" in section, distro
        assert layout.root.split("//", 1)[1] in section, layout.root
    for alias in embedded():
        assert alias.split("-")[0] in section
