"""catalog refresh against a fake upstream: bump, no change, fallback, bad SHA-512, dead server,
malformed listing; the Bar (no image bytes without a change, each new image fetched once and
never written to disk)."""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import urlsplit

import pytest
from fakeupstream import FakeUpstream

from pyimagecache.catalog import encode_document
from pyimagecache.errors import RefreshError
from pyimagecache.refresh import refresh_catalog
from pyimagecache.refresh.snapshots import debian_key, newest_first, ubuntu_key
from pyimagecache.refresh.sums import parse_sums

NET = {"retries": 0, "timeout": 5.0}
TODAY = "2026-07-01"

# Every file opened for writing while a refresh runs (audit hooks cannot be removed: one, gated).
_writes: List[str] = []
_recording = [False]


def _audit(event: str, args: Tuple[Any, ...]) -> None:
    if event != "open" or not _recording[0]:
        return
    path, mode, flags = args
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
    )
    # a file descriptor (Python 3.9's pathlib re-opens its os.open fd) was already recorded
    if writing and isinstance(path, (str, bytes, os.PathLike)) and "__pycache__" not in str(path):
        _writes.append(str(path))


sys.addaudithook(_audit)


def seed(fake: FakeUpstream) -> Dict[str, Any]:
    """The embedded catalog's six aliases, served by ``fake`` at their pinned snapshots, and the
    catalog document pinning them there."""
    doc: Dict[str, Any] = json.loads(files("pyimagecache").joinpath("catalog.json").read_bytes())
    for entry in doc.values():
        if entry["distro"] == "debian":
            fake.add_debian(entry["version"], entry["codename"], "20260520-2480")  # older
            images = fake.add_debian(entry["version"], entry["codename"], entry["snapshot"])
        else:
            codename = urlsplit(entry["arch"]["amd64"]["url"]).path.split("/")[2]
            fake.add_ubuntu(entry["version"], codename, "release-20260401")
            images = fake.add_ubuntu(entry["version"], codename, entry["snapshot"])
        for arch, path in images.items():
            entry["arch"][arch] = {"url": fake.url(path), "sha256": fake.sha256(path)}
    return doc


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(image_size=96 * 1024) as server:
        yield server


@pytest.fixture
def pinned(fake: FakeUpstream, tmp_path: Path) -> Tuple[Path, Dict[str, Any]]:
    doc = seed(fake)
    path = tmp_path / "catalog.json"
    path.write_bytes(encode_document(doc))
    fake.clear_log()
    return path, doc


def run(fake: FakeUpstream, path: Path, **kw: Any) -> Tuple[Any, List[str]]:
    lines: List[str] = []
    _writes.clear()
    _recording[0] = True
    try:
        result = refresh_catalog(
            path,
            debian_root=fake.debian_root,
            ubuntu_root=fake.ubuntu_root,
            today=TODAY,
            log=lines.append,
            network=NET,
            **kw,
        )
    finally:
        _recording[0] = False
    return result, lines


def test_no_change_is_byte_identical_and_downloads_no_image(fake, pinned):
    path, doc = pinned
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    result, lines = run(fake, path)
    assert result.changed == [] and not result.written
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert fake.image_requests() == [] and fake.image_bytes_sent() == 0
    for alias, entry in doc.items():
        assert f"resolved {alias} -> {entry['snapshot']} (unchanged)" in lines
    assert _writes == []
    assert list(path.parent.iterdir()) == [path]


def test_bump_fetches_each_new_debian_image_once_and_writes_no_image(fake, pinned):
    path, doc = pinned
    new12 = fake.add_debian("12", "bookworm", "20260615-2510")
    new13 = fake.add_debian("13", "trixie", "20260615-2510")
    new2404 = fake.add_ubuntu("24.04", "noble", "release-20260518.1")
    result, lines = run(fake, path)

    assert result.changed == ["debian-12", "debian-13", "ubuntu-24.04"] and result.written
    after = json.loads(path.read_bytes())
    assert path.read_bytes() == encode_document(after)  # 2-space, trailing newline
    assert list(after) == list(doc) and all(list(after[a]) == list(doc[a]) for a in doc)
    for alias, images, snapshot in (
        ("debian-12", new12, "20260615-2510"),
        ("debian-13", new13, "20260615-2510"),
        ("ubuntu-24.04", new2404, "release-20260518.1"),
    ):
        entry = after[alias]
        assert entry["snapshot"] == snapshot and entry["bumped_at"] == TODAY
        for arch, image in images.items():
            assert entry["arch"][arch] == {"url": fake.url(image), "sha256": fake.sha256(image)}
        assert f"resolved {alias} -> {snapshot} (was {doc[alias]['snapshot']})" in lines
    for alias in ("debian-11", "ubuntu-22.04", "ubuntu-26.04"):
        assert after[alias] == doc[alias]

    # The Bar: each new Debian image exactly once, completely; no Ubuntu image at all.
    got = sorted((r.method, r.path, r.sent) for r in fake.image_requests())
    want = sorted(("GET", p, 96 * 1024) for p in [*new12.values(), *new13.values()])
    assert got == want
    # ... and the only file written is the catalog's own temporary sibling.
    assert len(set(_writes)) == 1 and Path(_writes[0]).name.startswith(".catalog.json.tmp-")
    assert sorted(p.name for p in path.parent.iterdir()) == ["catalog.json"]

    # A second run finds nothing newer: byte-identical, no image bytes.
    fake.clear_log()
    again, _ = run(fake, path)
    assert again.changed == [] and fake.image_bytes_sent() == 0


def test_snapshots_order_numerically():
    names = ["20260601-9", "20260601-10", "latest", "daily", "20251231-99999", "2026061-1"]
    assert newest_first(names, debian_key) == ["20260601-10", "20260601-9", "20251231-99999"]
    names = ["release", "current", "release-20260518", "release-20260518.1", "release-20260519"]
    assert newest_first(names, ubuntu_key) == [
        "release-20260519",
        "release-20260518.1",
        "release-20260518",
    ]
    assert debian_key("20261301-1") is None  # month 13


@pytest.mark.parametrize("fault", ["missing file", "missing sums line"])
@pytest.mark.parametrize("alias", ["debian-12", "ubuntu-24.04"])
def test_incomplete_newest_snapshot_falls_back(fake, pinned, fault, alias):
    path, doc = pinned
    if alias == "debian-12":
        good = fake.add_debian("12", "bookworm", "20260610-2500")
        bad = fake.add_debian("12", "bookworm", "20260615-2510")
        sums, good_snap, bad_snap = (
            "/debian/bookworm/20260615-2510/SHA512SUMS",
            "20260610-2500",
            "20260615-2510",
        )
    else:
        good = fake.add_ubuntu("24.04", "noble", "release-20260601")
        bad = fake.add_ubuntu("24.04", "noble", "release-20260602")
        sums, good_snap, bad_snap = (
            "/ubuntu/noble/release-20260602/SHA256SUMS",
            "release-20260601",
            "release-20260602",
        )
    if fault == "missing file":
        fake.remove(bad["arm64"])
    else:
        fake.drop_sums_line(sums, bad["arm64"].rsplit("/", 1)[1])
    result, lines = run(fake, path, aliases=[alias])
    assert result.changed == [alias]
    entry = json.loads(path.read_bytes())[alias]
    assert entry["snapshot"] == good_snap
    assert entry["arch"]["arm64"]["url"] == fake.url(good["arm64"])
    assert any(line.startswith(f"fallback {alias}: {bad_snap} is incomplete") for line in lines)
    assert not any(bad_snap in r.path for r in fake.image_requests())


def test_all_newer_incomplete_keeps_the_pin(fake, pinned):
    path, _ = pinned
    bad = fake.add_debian("12", "bookworm", "20260615-2510")
    fake.remove(bad["amd64"])
    before = path.read_bytes()
    result, lines = run(fake, path)
    assert result.changed == [] and path.read_bytes() == before
    assert "resolved debian-12 -> 20260601-2496 (unchanged)" in lines
    assert fake.image_bytes_sent() == 0


def _assert_untouched(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_sha512_mismatch_fails_and_writes_nothing(fake, pinned):
    path, _ = pinned
    before = path.read_bytes()
    fake.add_ubuntu("24.04", "noble", "release-20260601")  # a good bump elsewhere
    bad = fake.add_debian("12", "bookworm", "20260615-2510")
    fake.corrupt_sum("/debian/bookworm/20260615-2510/SHA512SUMS", bad["arm64"].rsplit("/", 1)[1])
    with pytest.raises(RefreshError) as err:
        run(fake, path)
    message = str(err.value)
    assert "debian-12 arm64: SHA-512 mismatch" in message and fake.url(bad["arm64"]) in message
    assert "ubuntu-24.04" not in message
    _assert_untouched(path, before)


def test_dead_server_lists_every_alias_and_writes_nothing(fake, pinned):
    path, doc = pinned
    before = path.read_bytes()
    fake.stop()
    with pytest.raises(RefreshError) as err:
        run(fake, path)
    message = str(err.value)
    assert "failed for 6 alias(es)" in message
    for alias in doc:
        assert f"{alias}:" in message
    _assert_untouched(path, before)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\x00\x01\x02 not html at all", "links to nothing"),
        (b'<html><a href="https://login.example/">sign in</a></html>', "lists no snapshot"),
        (b"<html><body><h1>Index of /</h1><a href=", "links to nothing"),
    ],
)
def test_malformed_listing_fails_that_alias(fake, pinned, body, expected):
    path, _ = pinned
    before = path.read_bytes()
    fake.add_debian("11", "bullseye", "20260615-2510")  # would bump, must not be written
    fake.break_listing("/debian/bookworm/", body)
    with pytest.raises(RefreshError) as err:
        run(fake, path)
    message = str(err.value)
    assert "failed for 1 alias(es)" in message and "debian-12" in message and expected in message
    _assert_untouched(path, before)


def test_malformed_sums_file_names_the_line(fake, pinned):
    path, _ = pinned
    fake.add_ubuntu("26.04", "resolute", "release-20260601")
    fake.set_sums("/ubuntu/resolute/release-20260601/SHA256SUMS", b"<html>502 Bad Gateway</html>\n")
    with pytest.raises(RefreshError, match=r"SHA256SUMS line 1: expected '<64 hex digits> <file>'"):
        run(fake, path)


def test_unknown_alias_is_suggested(fake, pinned):
    path, _ = pinned
    with pytest.raises(RefreshError, match=r"did you mean .*debian-12"):
        run(fake, path, aliases=["debian-21"])


def test_dry_run_and_alias_selection(fake, pinned):
    path, _ = pinned
    before = path.read_bytes()
    fake.add_debian("12", "bookworm", "20260615-2510")
    fake.add_debian("11", "bullseye", "20260615-2510")
    result, _ = run(fake, path, aliases=["debian-12"], dry_run=True)
    assert result.changed == ["debian-12"] and not result.written
    assert path.read_bytes() == before
    assert json.loads(result.new)["debian-12"]["snapshot"] == "20260615-2510"
    assert json.loads(result.new)["debian-11"] == json.loads(before)["debian-11"]


def test_ubuntu_redirect_to_a_foreign_codename_fails(fake, pinned, tmp_path):
    path, doc = pinned
    doc["ubuntu-24.04"]["codename"] = "oracular"
    path.write_bytes(encode_document(doc))
    with pytest.raises(RefreshError, match="not to the catalog's codename 'oracular'"):
        run(fake, path)


def test_sums_formats():
    text = b"%s  a.raw\n\n%s *b.img\n" % (b"a" * 128, b"B" * 128)
    assert parse_sums(text, "sha512") == {"a.raw": "a" * 128, "b.img": "b" * 128}
    with pytest.raises(RefreshError, match="line 1"):
        parse_sums(b"%s  a.raw\n" % (b"a" * 64), "sha512")


def test_cli_refresh_and_dry_run(fake, pinned, capsys):
    from pyimagecache.cli import main

    path, _ = pinned
    fake.add_debian("13", "trixie", "20260615-2510")
    common = ["--catalog", str(path), "--debian-root", fake.debian_root]
    common += ["--ubuntu-root", fake.ubuntu_root]
    before = path.read_bytes()
    assert main(["catalog", "refresh", *common, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert '+    "snapshot": "20260615-2510",' in out and "would bump debian-13" in err
    assert path.read_bytes() == before
    assert main(["catalog", "refresh", *common, "--alias", "debian-13"]) == 0
    out, err = capsys.readouterr()
    assert "resolved debian-13 -> 20260615-2510 (was 20260601-2496)" in err
    assert json.loads(path.read_bytes())["debian-13"]["snapshot"] == "20260615-2510"
