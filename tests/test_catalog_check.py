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
    assert len(doc) == 6
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


_DELETE = object()
_D12 = "debian-12"
_U24 = "ubuntu-24.04"
_URL = "https://cloud.debian.org/images/cloud/bookworm/{}/debian-12-generic-amd64-x.raw"

BREAKAGES = {
    "missing arch": (_set(f"{_D12}/arch/arm64", _DELETE), "no arm64 image"),
    "unknown arch": (_set(f"{_D12}/arch/mips64", {"url": "x", "sha256": "y"}), "unknown arch"),
    "short digest": (_set(f"{_D12}/arch/amd64/sha256", "ab" * 31), "64 lowercase hex"),
    "uppercase digest": (_set(f"{_U24}/arch/arm64/sha256", "AB" * 32), "64 lowercase hex"),
    "http url": (
        _set(f"{_D12}/arch/amd64/url", _URL.format("20260601-2496").replace("https", "http")),
        "must be https",
    ),
    "url outside snapshot": (
        _set(f"{_D12}/arch/amd64/url", _URL.format("20260515-2400")),
        "not inside the snapshot directory",
    ),
    "latest pointer": (
        _set(f"{_D12}/arch/amd64/url", _URL.format("latest/20260601-2496")),
        "moving pointer /latest/",
    ),
    "bare release": (
        _set(
            f"{_U24}/arch/amd64/url",
            "https://cloud-images.ubuntu.com/releases/noble/release/release-20260518/x.img",
        ),
        "moving pointer /release/",
    ),
    "unknown distro": (_set(f"{_D12}/distro", "fedora"), "unknown distro 'fedora'"),
    "debian without codename": (_set(f"{_D12}/codename", _DELETE), "needs a 'codename'"),
    "unsafe cache name": (_set(f"{_D12}/snapshot", "../20260601-2496"), "not a safe file name"),
    "undated snapshot": (_set(f"{_U24}/snapshot", "release"), "not a dated ubuntu snapshot"),
    "bad bumped_at": (_set(f"{_D12}/bumped_at", "10/06/2026"), "not a YYYY-MM-DD date"),
    "unknown field": (_set(f"{_D12}/sha1", "x"), "unknown field 'sha1'"),
    "same url twice": (
        lambda d: d[_D12]["arch"]["arm64"].update(url=d[_D12]["arch"]["amd64"]["url"]),
        "same url as",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_rule_is_caught(name):
    breaker, expected = BREAKAGES[name]
    doc = embedded()
    breaker(doc)
    problems = check_document(doc)
    assert any(expected in p for p in problems), problems


def test_all_problems_are_listed_at_once():
    doc = embedded()
    for name in ("missing arch", "unknown distro", "bare release"):
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
    BREAKAGES["missing arch"][0](doc)
    BREAKAGES["short digest"][0](doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["catalog", "check", "--catalog", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "no arm64 image" in err and "64 lowercase hex" in err and "2 problem(s)" in err
