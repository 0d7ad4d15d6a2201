"""catalog check: the embedded catalog passes; each rule catches its own breakage."""

from __future__ import annotations

import argparse
import copy
import json
from importlib.resources import files
from typing import Any, Callable, Dict, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyimagecache import catalog
from pyimagecache.catalog import decode_document
from pyimagecache.errors import CatalogError
from pyimagecache.refresh import check_document
from pyimagecache.refresh.check import Problem, check_problems

Doc = Dict[str, Any]


def embedded() -> Doc:
    data: Doc = json.loads(files("pyimagecache").joinpath("catalog.json").read_bytes())
    return data


def test_embedded_catalog_passes():
    doc = embedded()
    assert len(doc) >= 24 and len({e["distro"] for e in doc.values()}) >= 11
    assert check_document(doc) == []
    assert check_document(doc, require_provenance=True) == []


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
_D13 = "debian-13"
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
    "no provenance": (
        _set(f"{_D13}/arch/arm64/provenance", _DELETE),
        "alias 'debian-13' arch 'arm64': no provenance record",
    ),
    "provenance not an object": (
        _set(f"{_D13}/arch/arm64/provenance", "lima"),
        "provenance: must be an object, got str",
    ),
    "provenance record in words": (
        _set(f"{_D13}/arch/arm64/provenance/record", "lima's debian-12 template"),
        "must be an https:// URL of the file or a github:OWNER/REPO@COMMIT:PATH reference",
    ),
    "provenance record over http": (
        _set(f"{_U24}/arch/amd64/provenance/record", "http://cloud-images.ubuntu.com/SHA256SUMS"),
        "must be an https:// URL",
    ),
    "provenance record with a short commit": (
        _set(
            f"{_D13}/arch/arm64/provenance/record",
            "github:lima-vm/lima@183a60d7:templates/_images/debian-12.yaml",
        ),
        "is not github:OWNER/REPO@COMMIT:PATH (COMMIT: all 40 hex digits)",
    ),
    "provenance record with a branch": (
        _set(f"{_D13}/arch/arm64/provenance/record", "github:lima-vm/lima@master:x.yaml"),
        "is not github:OWNER/REPO@COMMIT:PATH",
    ),
    "provenance record outside the repository": (
        _set(f"{_D13}/arch/arm64/provenance/record", "github:lima-vm/lima@" + "a" * 40 + ":../x"),
        "PATH must be a path inside the repository",
    ),
    "provenance record without a path": (
        _set(f"{_D13}/arch/arm64/provenance/record", "github:lima-vm/lima@" + "a" * 40),
        "is not github:OWNER/REPO@COMMIT:PATH",
    ),
    "provenance without record": (
        _set(f"{_D13}/arch/arm64/provenance/record", _DELETE),
        "field 'record' must name the checksum file or public record",
    ),
    "verified without a key": (
        _set(f"{_D13}/arch/arm64/provenance/signature", "verified"),
        "field 'key' '' must be the verifying key's fingerprint",
    ),
    "verified with a short key id": (
        _set(f"{_U24}/arch/amd64/provenance/key", "1A5D6C4C7DB87C81"),
        "field 'key' '1A5D6C4C7DB87C81' must be the verifying key's fingerprint",
    ),
    "key without a verified signature": (
        _set(f"{_U24}/arch/amd64/provenance/signature", "not-checked"),
        "field 'key' is set but 'signature' is 'not-checked'",
    ),
    "unknown signature state": (
        _set(f"{_D13}/arch/arm64/provenance/signature", "trusted"),
        "field 'signature' 'trusted' must be one of verified, unsigned, not-checked",
    ),
    "unknown record format": (
        _set(f"{_D13}/arch/arm64/provenance/format", "yaml"),
        "provenance: format 'yaml' is not a known record format",
    ),
    "undated provenance": (
        _set(f"{_D13}/arch/arm64/provenance/date", _DELETE),
        "provenance: needs a 'date'",
    ),
    "bad provenance date": (
        _set(f"{_D13}/arch/arm64/provenance/date", "7 Dec 2026"),
        "field 'date' '7 Dec 2026' is not a YYYY-MM-DD date",
    ),
    "unknown provenance field": (
        _set(f"{_D13}/arch/arm64/provenance/sha256", "ab" * 32),
        "provenance: unknown field 'sha256'",
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
    problems = check_document(doc, require_provenance=True)
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


def run(capsys, *argv: str) -> Tuple[int, str, str]:
    from pyimagecache.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: usage errors and --help
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_check(tmp_path, capsys):
    code, out, _ = run(capsys, "catalog", "check")
    assert code == 0 and f"OK ({len(catalog.load_catalog())} aliases, package catalog rules)" in out
    good = tmp_path / "good.json"
    good.write_text(json.dumps(embedded()))
    assert run(capsys, "catalog", "check", "--catalog", str(good))[0] == 0
    assert run(capsys, "catalog", "check", "--strict", "--catalog", str(good))[0] == 0
    doc = copy.deepcopy(embedded())
    BREAKAGES["no arm64 where the family builds it"][0](doc)
    BREAKAGES["short sha256"][0](doc)
    BREAKAGES["no provenance"][0](doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, _, err = run(capsys, "catalog", "check", "--strict", "--catalog", str(bad))
    assert code == 1
    assert "no arm64 image" in err and "64 lowercase hex" in err and "no provenance" in err
    assert "3 problem(s)" in err
    # as a user's catalog, a missing arch and a missing record are its own business
    code, _, err = run(capsys, "catalog", "check", "--catalog", str(bad))
    assert code == 1 and "64 lowercase hex" in err and "1 problem(s)" in err


def test_the_package_catalog_file_gets_the_package_rules(capsys):
    from pyimagecache.refresh import embedded_catalog_path

    path = embedded_catalog_path()
    if path is None:
        pytest.skip("the package's catalog.json is not a plain file here")
    code, out, _ = run(capsys, "catalog", "check", "--catalog", str(path))
    assert code == 0 and "package catalog rules" in out


# -- a user's catalog (issue 18): well-formed pins pass, whatever their family ---------------

_HEX = "ab" * 32


def private_catalog(tmp_path) -> Doc:
    disk = tmp_path / "golden.qcow2"
    disk.write_bytes(b"not read by check")
    return {
        "acme-golden": {  # a distro no family knows, a file:// URL, one arch
            "distro": "acme",
            "version": "7",
            "snapshot": "build_2026.12.07-final",
            "arch": {"arm64": {"url": disk.as_uri(), "sha256": _HEX}},
        },
        "debian-12-mirror": {  # a known family on a local mirror: its layout is not checked
            "distro": "debian",
            "version": "12",
            "snapshot": "mirror-7",
            "arch": {
                "amd64": {"url": "http://mirror.lan/debian/disk-a.qcow2", "sha512": "cd" * 64},
                "ppc64le": {"url": "http://mirror.lan/debian/latest/disk-b.qcow2", "sha256": _HEX},
            },
        },
        "ubuntu-lab": {  # http on a LAN host, provenance optional but checked when present
            "distro": "ubuntu",
            "version": "24.04",
            "snapshot": "Lab1",
            "arch": {
                "amd64": {
                    "url": "http://10.0.0.5:8080/ubuntu/noble.img",
                    "sha256": "12" * 32,
                    "provenance": {
                        "record": "file:///srv/mirror/SHA256SUMS",
                        "format": "sha256sums",
                        "signature": "unsigned",
                    },
                }
            },
        },
    }


def test_a_private_catalog_passes(tmp_path, capsys):
    doc = private_catalog(tmp_path)
    assert check_document(doc, embedded=False) == []
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(doc))
    code, out, err = run(capsys, "catalog", "check", "--catalog", str(mine))
    assert (code, err) == (0, "")
    assert out == f"{mine}: OK (3 aliases, user catalog rules)\n"
    # the package's rules refuse each of those liberties
    problems = check_document(doc)
    for expected in (
        "unknown distro 'acme'",
        "no amd64 image",
        "must be https://host/...",
        "not a debian snapshot name",
        "moving pointer /latest/",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    assert run(capsys, "catalog", "check", "--strict", "--catalog", str(mine))[0] == 1


PRIVATE_BREAKAGES = {
    "no url": (_set("acme-golden/arch/arm64/url", _DELETE), "'url' must be a non-empty string"),
    "ftp url": (
        _set("acme-golden/arch/arm64/url", "ftp://mirror.lan/x.qcow2"),
        "must be https://host/..., http://host/... or file:///path",
    ),
    "http without a host": (
        _set("ubuntu-lab/arch/amd64/url", "http:///x.img"),
        "must be https://host/..., http://host/... or file:///path",
    ),
    "a directory": (
        _set("ubuntu-lab/arch/amd64/url", "http://10.0.0.5/ubuntu/"),
        "names a directory, not a file",
    ),
    "bad digest": (_set("acme-golden/arch/arm64/sha256", "xyz"), "64 lowercase hex"),
    "no digest": (_set("acme-golden/arch/arm64/sha256", _DELETE), "needs a sha256 or sha512"),
    "unknown arch": (
        _set("acme-golden/arch/sparc", {"url": "file:///x", "sha256": _HEX}),
        "unknown arch",
    ),
    "no arch at all": (_set("acme-golden/arch", {}), "'arch' must be an object with at least one"),
    "no distro": (_set("acme-golden/distro", _DELETE), "'distro' must be a non-empty string"),
    "no version": (_set("acme-golden/version", ""), "'version' must be a non-empty string"),
    "unsafe snapshot": (_set("acme-golden/snapshot", "../x"), "is not a safe file name"),
    "unknown field": (_set("acme-golden/arch/arm64/size", 3), "unknown field 'size'"),
    "same url twice": (
        _set("debian-12-mirror/arch/ppc64le/url", "http://mirror.lan/debian/disk-a.qcow2"),
        "same url as alias 'debian-12-mirror' arch 'amd64'",
    ),
    "verified without a key": (
        _set("ubuntu-lab/arch/amd64/provenance/signature", "verified"),
        "field 'key' '' must be the verifying key's fingerprint",
    ),
    "record in words": (
        _set("ubuntu-lab/arch/amd64/provenance/record", "the lab's notes"),
        "must be an https:// or http:// or file:// URL of the file",
    ),
}


@pytest.mark.parametrize("name", sorted(PRIVATE_BREAKAGES))
def test_a_private_catalog_still_needs_well_formed_pins(tmp_path, name):
    breaker, expected = PRIVATE_BREAKAGES[name]
    doc = private_catalog(tmp_path)
    breaker(doc)
    problems = check_document(doc, embedded=False)
    assert any(expected in p for p in problems), problems


def _debian_upstream() -> Doc:
    entry = copy.deepcopy(embedded()[_D12])
    entry["arch"] = {"arm64": entry["arch"]["arm64"]}  # one arch: fine for a user
    del entry["arch"]["arm64"]["provenance"]  # optional for a user
    return {"debian-12-own": entry}


_S390X = (
    "https://cloud.debian.org/images/cloud/bookworm/20260712-2537/"
    "debian-12-generic-s390x-20260712-2537.qcow2"
)


def test_family_rules_apply_to_a_known_family_on_its_upstream():
    doc = _debian_upstream()
    assert check_document(doc, embedded=False) == []
    for breaker, expected in (
        (_url("debian-12-own/arch/arm64", "20260712-2537", "20260601-2496"), "is not inside"),
        (_url("debian-12-own/arch/arm64", "/20260712-2537/", "/latest/"), "moving pointer"),
        (_url("debian-12-own/arch/arm64", "genericcloud-arm64", "genericcloud-amd64"), "is the"),
        (_url("debian-12-own/arch/arm64", ".qcow2", ".raw"), "shape of Debian image URLs"),
        (_set("debian-12-own/snapshot", "2026-07-12"), "not a debian snapshot name"),
        (_set("debian-12-own/codename", _DELETE), "needs a 'codename'"),
        (
            _set("debian-12-own/arch/s390x", {"url": _S390X, "sha256": _HEX}),
            "Debian publishes no s390x image",
        ),
    ):
        broken = copy.deepcopy(doc)
        breaker(broken)
        problems = check_document(broken, embedded=False)
        assert any(expected in p for p in problems), (expected, problems)


def test_the_same_entry_on_a_mirror_is_the_sites_business():
    doc = _debian_upstream()
    image = doc["debian-12-own"]["arch"]["arm64"]
    image["url"] = "https://mirror.example.net/debian-cloud/latest/debian-12-arm64.img"
    doc["debian-12-own"]["snapshot"] = "mirror-2026-12"
    del doc["debian-12-own"]["codename"]
    assert check_document(doc, embedded=False) == []


# -- catalog check --json -----------------------------------------------------------------


def _json_result(capsys, *argv: str) -> Tuple[int, Dict[str, Any]]:
    code, out, err = run(capsys, "catalog", "check", "--json", *argv)
    assert err == ""
    result = json.loads(out)
    assert set(result) == {"catalog", "rules", "aliases", "ok", "problems"}
    assert result["ok"] is (code == 0) and result["ok"] is (result["problems"] == [])
    for problem in result["problems"]:
        assert set(problem) == {"alias", "arch", "field", "message"}
        assert all(v is None or isinstance(v, str) for v in problem.values())
        assert problem["message"]
    return code, result


def test_check_json_lists_problems_as_objects(tmp_path, capsys):
    code, result = _json_result(capsys)
    assert code == 0
    assert result == {
        "catalog": "embedded catalog.json",
        "rules": "package",
        "aliases": len(catalog.load_catalog()),
        "ok": True,
        "problems": [],
    }
    doc = embedded()
    BREAKAGES["no arm64 where the family builds it"][0](doc)
    BREAKAGES["short sha256"][0](doc)
    BREAKAGES["verified without a key"][0](doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, result = _json_result(capsys, "--strict", "--catalog", str(bad))
    assert (
        code == 1
        and result["rules"] == "package"
        and result["aliases"] == len(catalog.load_catalog())
    )
    assert {"alias": _D12, "arch": None, "field": "arch", "message": "no arm64 image"} in result[
        "problems"
    ]
    assert {
        "alias": "fedora-44",
        "arch": "amd64",
        "field": "sha256",
        "message": f"sha256 must be 64 lowercase hex digits, got {'ab' * 31!r}",
    } in result["problems"]
    (key,) = [p for p in result["problems"] if p["field"] == "provenance.key"]
    assert (key["alias"], key["arch"]) == (_D13, "arm64")
    assert key["message"].startswith("provenance: field 'key' '' must be the verifying key's")
    code, result = _json_result(capsys, "--catalog", str(bad))
    assert code == 1 and result["rules"] == "user" and len(result["problems"]) == 2


def test_check_json_of_an_unreadable_catalog(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": ')
    code, result = _json_result(capsys, "--catalog", str(broken))
    assert code == 1 and result["aliases"] is None
    (problem,) = result["problems"]
    assert problem["alias"] is None and "not valid JSON" in problem["message"]
    code, result = _json_result(capsys, "--catalog", str(tmp_path / "missing.json"))
    assert code == 1 and "No such file" in result["problems"][0]["message"]
    # without --json, the same failures are the usual one-line errors, exit 1
    code, out, err = run(capsys, "catalog", "check", "--catalog", str(broken))
    assert (code, out) == (1, "") and err.startswith("pyimagecache: error: catalog ")


def test_check_json_top_level_problems_name_nothing(tmp_path, capsys):
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    code, result = _json_result(capsys, "--catalog", str(listed))
    assert code == 1 and result["aliases"] is None
    assert result["problems"] == [
        {
            "alias": None,
            "arch": None,
            "field": None,
            "message": "top level must be an object of aliases, got list",
        }
    ]


# -- help text ------------------------------------------------------------------------------


def _catalog_parsers() -> Dict[str, argparse.ArgumentParser]:
    from pyimagecache.cli import build_parser

    def sub(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(action.choices)

    catalog = sub(build_parser())["catalog"]
    return {"catalog": catalog, **{f"catalog {k}": v for k, v in sub(catalog).items()}}


@pytest.mark.parametrize("command", ["catalog", "catalog check", "catalog refresh"])
def test_catalog_help_has_no_markup_and_every_option_says_what_it_does(capsys, command):
    parser = _catalog_parsers()[command]
    text = parser.format_help()
    for markup in ("``", "`", ":func:", ":mod:", ":class:", ":data:", ".. "):
        assert markup not in text, (markup, text)
    assert parser.description and parser.description.strip()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help and choice.help.strip(), choice.dest
            continue
        assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, (
            action.option_strings or action.dest
        )
    code, out, _ = run(capsys, *command.split(), "--help")
    assert code == 0 and "``" not in out and "`" not in out


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


# -- hostile input --------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(["https://[::1", "http:///x", "file:///a", "github:a/b@x:y", "", "latest"])
    | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=12,
)


@settings(deadline=None, max_examples=80)
@given(_JSON, st.sampled_from(["url", "sha256", "snapshot", "provenance", "record", "arch"]))
def test_any_json_gives_problems_never_an_exception(data, field):
    """Whatever a catalog holds, check lists problems; it never raises."""
    image = {"url": "https://cloud.debian.org/x.qcow2", "sha256": _HEX}
    provenance = {"record": "r", "format": "bsd", "signature": "unsigned"}
    if field == "record":
        image["provenance"] = {**provenance, "record": data}
    elif field == "arch":
        image = data
    else:
        image[field] = data
    entry = {"distro": "debian", "version": "12", "snapshot": "20260712-2537", "arch": {}}
    for candidate in (data, {"a": data}, {"a": {**entry, "arch": {"amd64": image}}}):
        for embedded_rules in (True, False):
            problems = check_problems(candidate, embedded=embedded_rules, require_provenance=True)
            assert all(isinstance(p, Problem) and p.message for p in problems)
            assert all(isinstance(p.as_dict(), dict) and str(p) for p in problems)
