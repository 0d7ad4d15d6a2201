"""Every pin of the embedded catalog says where its digest was read; ``list --provenance`` and
``list --json`` show it."""

from __future__ import annotations

import datetime
import json
from importlib.resources import files
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from pyimagecache import catalog
from pyimagecache.cli import main
from pyimagecache.refresh.check import PROVENANCE_FORMATS, record_problem

Doc = Dict[str, Any]
#: The two keys whose signatures over stored copies of upstream checksum files were checked.
UBUNTU_UEC_KEY = "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81"
OPENSUSE_KEY = "AD485664E901B867051AB15F35A2F86E29B700A4"


def embedded() -> Doc:
    data: Doc = json.loads(files("pyimagecache").joinpath("catalog.json").read_bytes())
    return data


def pins(doc: Doc) -> Iterator[Tuple[str, str, Doc]]:
    for alias, entry in doc.items():
        for arch, image in entry["arch"].items():
            yield alias, arch, image


def test_every_embedded_pin_names_a_valid_public_record():
    seen = 0
    for alias, arch, image in pins(embedded()):
        record = image.get("provenance")
        assert isinstance(record, dict), (alias, arch)
        assert catalog.provenance_problems(record) == [], (alias, arch)
        name = record["record"]
        assert name.startswith(("https://", "github:")), (alias, arch, name)
        assert record_problem(name) is None, (alias, arch, name)
        assert record["format"] in PROVENANCE_FORMATS, (alias, arch)
        assert record["signature"] in ("verified", "unsigned"), (alias, arch)
        assert datetime.date.fromisoformat(record["date"]) <= datetime.date(2026, 12, 7)
        seen += 1
    assert seen >= 75


def test_the_records_say_what_they_are():
    """lima's templates at one commit name their file; an upstream checksum file is verified
    only with a key's fingerprint; a third party's digest says so in the note."""
    doc = embedded()
    for alias, arch, image in pins(doc):
        record = image["provenance"]
        if record["format"] == "lima-template":
            assert record["record"].startswith("github:lima-vm/lima@")
            assert record["record"].endswith(f":templates/_images/{alias}.yaml")
            assert record["signature"] == "unsigned"
        if record["signature"] == "verified":
            assert record["key"] in (UBUNTU_UEC_KEY, OPENSUSE_KEY)
            assert record["record"].startswith("https://")
            assert "gpgv" in record["note"]
        if record["format"] in ("third-party-pin", "nix-sri"):
            assert record["signature"] == "unsigned"
            assert "third party" in record["note"], (alias, arch)
    # the one digest not read from any upstream checksum file says so (issue 19)
    alpine = doc["alpine-3.24"]["arch"]["arm64"]
    assert "sha512" not in alpine
    assert "computed" in alpine["provenance"]["note"]
    assert "sha512" in alpine["provenance"]["note"].lower()
    ubuntu = doc["ubuntu-24.04"]["arch"]["amd64"]["provenance"]
    assert ubuntu["record"].endswith("/release-20260725/SHA256SUMS")
    assert ubuntu["key"] == UBUNTU_UEC_KEY


def test_runtime_provenance_is_the_documents():
    for alias, info in catalog.load_catalog().items():
        for arch, image in info.arch.items():
            assert image.provenance is not None
            document = embedded()[alias]["arch"][arch]["provenance"]
            assert catalog.provenance_document(image.provenance) == document


# -- pyimagecache list ---------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def package_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYIMAGECACHE_CATALOG", raising=False)


def test_list_provenance_table(package_catalog: None, capsys: pytest.CaptureFixture[str]):
    code, out, err = run(capsys, "list", "--provenance")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ALIAS",
        "ARCH",
        "SNAPSHOT",
        "RECORD",
        "SIGNATURE",
        "KEY",
        "DATE",
    ]
    rows = [line.split() for line in lines[1:]]
    doc = embedded()
    expected = sorted((alias, arch) for alias, arch, _ in pins(doc))
    assert [(r[0], r[1]) for r in rows] == expected
    for alias, arch, snapshot, record, signature, key, date in rows:
        image = doc[alias]["arch"][arch]
        p = image["provenance"]
        assert snapshot == image.get("snapshot", doc[alias]["snapshot"])
        assert (record, signature, date) == (p["record"], p["signature"], p["date"])
        assert key == p.get("key", "-")
    by_pin = {(r[0], r[1]): r for r in rows}
    assert by_pin[("ubuntu-24.04", "s390x")][4:6] == ["verified", UBUNTU_UEC_KEY]
    assert by_pin[("oraclelinux-9", "arm64")][2] == "OL9U8-b182"  # the arch's own snapshot


def test_list_provenance_of_a_user_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    mine = tmp_path / "mine.json"
    mine.write_text(
        json.dumps(
            {
                "lab": {
                    "distro": "acme",
                    "version": "1",
                    "snapshot": "s1",
                    "arch": {
                        "amd64": {"url": "file:///srv/a.img", "sha256": "ab" * 32},
                        "arm64": {
                            "url": "file:///srv/b.img",
                            "sha256": "cd" * 32,
                            "provenance": {
                                "record": "https://lab.example/SHA256SUMS",
                                "format": "sha256sums",
                                "signature": "not-checked",
                            },
                        },
                    },
                }
            }
        )
    )
    monkeypatch.setenv("PYIMAGECACHE_CATALOG", str(mine))
    code, out, _ = run(capsys, "list", "--provenance")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rows == [
        ["lab", "amd64", "s1", "-", "-", "-", "-"],
        ["lab", "arm64", "s1", "https://lab.example/SHA256SUMS", "not-checked", "-", "-"],
    ]


def test_list_json_carries_provenance(package_catalog: None, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    listed = json.loads(out)
    doc = embedded()
    assert listed == doc
    for alias, arch, image in pins(doc):
        assert listed[alias]["arch"][arch]["provenance"] == image["provenance"]
    # --provenance changes nothing for a script reading --json
    assert run(capsys, "list", "--json", "--provenance")[1] == out
