"""catalog refresh against a fake upstream serving every family: no change, bump, fallback,
bad checksum file, dead server, malformed listing; the Bar (no image bytes, not even for
Debian, whose SHA-512 pins come from SHA512SUMS; no file written but the catalog)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import fakeupstreams as fu
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
    # a file descriptor (Python 3.9's pathlib re-opens its os.open fd) was already recorded;
    # gpgv's private temporary directory is the signature check's, not an image
    text = str(path)
    if (
        writing
        and isinstance(path, (str, bytes, os.PathLike))
        and "__pycache__" not in text
        and "pyimagecache-gpgv-" not in text
    ):
        _writes.append(text)


sys.addaudithook(_audit)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(image_size=16 * 1024) as server:
        yield server


@pytest.fixture
def pinned(fake: FakeUpstream, tmp_path: Path) -> Tuple[Path, Dict[str, Any]]:
    """The embedded catalog served by ``fake`` at its pinned snapshots (an older Debian
    snapshot beside them), and the catalog file pinning them there."""
    debian(fake, "12", "20260520-2480")
    doc = fu.seed(fake)
    path = tmp_path / "catalog.json"
    path.write_bytes(encode_document(doc))
    fake.clear_log()
    return path, doc


CODENAMES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}


def debian(fake: FakeUpstream, version: str, snapshot: str, *arches: str) -> Dict[str, str]:
    """A new Debian snapshot (amd64 and arm64 unless ``arches`` are given)."""
    return fu.publish_snapshot(
        fake,
        "debian",
        arches or ("amd64", "arm64"),
        version=version,
        codename=CODENAMES[version],
        snapshot=snapshot,
    )


def run(fake: FakeUpstream, path: Path, **kw: Any) -> Tuple[Any, List[str]]:
    lines: List[str] = []
    _writes.clear()
    _recording[0] = True
    try:
        kw.setdefault("keyring", fake.keyring)  # the fake's throwaway signing key
        result = refresh_catalog(
            path, roots=fake.roots(), today=TODAY, log=lines.append, network=NET, **kw
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


def test_debian_bump_pins_sha512_from_sha512sums_and_transfers_no_image_bytes(fake, pinned):
    path, doc = pinned
    new12 = debian(fake, "12", "20260815-2610", "amd64", "arm64", "ppc64le")
    new13 = debian(fake, "13", "20260815-2610", "amd64", "arm64", "ppc64le", "riscv64")
    new2404 = fu.publish_snapshot(
        fake,
        "ubuntu",
        ("amd64", "arm64", "riscv64", "s390x", "ppc64le"),
        version="24.04",
        codename="noble",
        snapshot="release-20260801.1",
    )
    result, lines = run(fake, path)

    assert result.changed == ["debian-12", "debian-13", "ubuntu-24.04"] and result.written
    after = json.loads(path.read_bytes())
    assert path.read_bytes() == encode_document(after)  # 2-space, trailing newline
    assert list(after) == list(doc)
    for alias in doc:  # humans' key order kept; a new bumped_at goes where the schema puts it
        keys = [k for k in after[alias] if k != "bumped_at"]
        assert keys == [k for k in doc[alias] if k != "bumped_at"]
    assert list(after["debian-12"])[:5] == [
        "distro",
        "version",
        "codename",
        "snapshot",
        "bumped_at",
    ]
    for alias, images, snapshot, algorithm in (
        ("debian-12", new12, "20260815-2610", "sha512"),
        ("debian-13", new13, "20260815-2610", "sha512"),
        ("ubuntu-24.04", new2404, "release-20260801.1", "sha256"),
    ):
        entry = after[alias]
        assert entry["snapshot"] == snapshot and entry["bumped_at"] == TODAY
        for arch, image in images.items():
            slot = dict(entry["arch"][arch])
            assert slot.pop("provenance")["date"] == TODAY  # what it says: test_provenance.py
            assert slot == {"url": fake.url(image), algorithm: fake.sha(image, algorithm)}
        assert f"resolved {alias} -> {snapshot} (was {doc[alias]['snapshot']})" in lines
    for alias in set(doc) - {"debian-12", "debian-13", "ubuntu-24.04"}:
        assert after[alias] == doc[alias]

    # The Bar: not one image byte, Debian included; only the small SHA512SUMS per snapshot.
    assert fake.image_requests() == [] and fake.image_bytes_sent() == 0
    assert "/debian/bookworm/20260815-2610/SHA512SUMS" in fake.paths()
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


CASES = {
    "debian-12": (
        "debian",
        dict(version="12", codename="bookworm"),
        "SHA512SUMS",
        ("20260801-2600", "20260802-2601"),
    ),
    "ubuntu-24.04": (
        "ubuntu",
        dict(version="24.04", codename="noble"),
        "SHA256SUMS",
        ("release-20260801", "release-20260802"),
    ),
}


@pytest.mark.parametrize("fault", ["missing file", "missing sums line"])
@pytest.mark.parametrize("alias", sorted(CASES))
def test_incomplete_newest_snapshot_falls_back(fake, pinned, fault, alias):
    path, doc = pinned
    distro, kw, sums_name, (good_snap, bad_snap) = CASES[alias]
    arches = list(doc[alias]["arch"])
    good = fu.publish_snapshot(fake, distro, arches, snapshot=good_snap, **kw)
    bad = fu.publish_snapshot(fake, distro, arches, snapshot=bad_snap, **kw)
    if fault == "missing file":
        fake.remove(bad["arm64"])
    else:
        fake.drop_sums_line(
            bad["arm64"].rsplit("/", 1)[0] + "/" + sums_name, bad["arm64"].rsplit("/", 1)[1]
        )
    result, lines = run(fake, path, aliases=[alias])
    assert result.changed == [alias]
    entry = json.loads(path.read_bytes())[alias]
    assert entry["snapshot"] == good_snap
    assert entry["arch"]["arm64"]["url"] == fake.url(good["arm64"])
    assert any(line.startswith(f"fallback {alias}: {bad_snap} is incomplete") for line in lines)
    assert fake.image_bytes_sent() == 0


def test_all_newer_incomplete_keeps_the_pin(fake, pinned):
    path, doc = pinned
    bad = fu.publish_snapshot(
        fake,
        "debian",
        list(doc["debian-12"]["arch"]),
        version="12",
        codename="bookworm",
        snapshot="20260801-2600",
    )
    fake.remove(bad["amd64"])
    before = path.read_bytes()
    result, lines = run(fake, path)
    assert result.changed == [] and path.read_bytes() == before
    assert "resolved debian-12 -> 20260712-2537 (unchanged)" in lines
    assert fake.image_bytes_sent() == 0


def test_lagging_arch_keeps_its_own_snapshot_while_the_others_bump(fake, pinned):
    """Debian 11's ppc64el build stopped at 20250703-2162: amd64/arm64 move on, it stays."""
    path, doc = pinned
    new = debian(fake, "11", "20260801-2600")
    result, lines = run(fake, path, aliases=["debian-11"])
    entry = json.loads(path.read_bytes())["debian-11"]
    assert result.changed == ["debian-11"] and entry["snapshot"] == "20260801-2600"
    assert entry["arch"]["amd64"]["url"] == fake.url(new["amd64"])
    assert entry["arch"]["ppc64le"] == doc["debian-11"]["arch"]["ppc64le"]
    assert entry["arch"]["ppc64le"]["snapshot"] == "20250703-2162"
    assert "genericcloud-ppc64el-20250703-2162" in entry["arch"]["ppc64le"]["url"]
    assert any(line.startswith("note debian-11 ppc64le:") for line in lines)


def _assert_untouched(path: Path, before: bytes) -> None:
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_malformed_sums_fails_and_writes_nothing(fake, pinned):
    path, _ = pinned
    before = path.read_bytes()
    fu.publish_snapshot(
        fake, "ubuntu", version="24.04", codename="noble", snapshot="release-20260801"
    )  # a good bump elsewhere
    bad = debian(fake, "12", "20260801-2600", "amd64", "arm64", "ppc64le")
    sums = bad["amd64"].rsplit("/", 1)[0] + "/SHA512SUMS"
    fake.render(sums, b"<html>502 Bad Gateway</html>\n")
    with pytest.raises(RefreshError) as err:
        run(fake, path)
    message = str(err.value)
    assert "debian-12:" in message and "SHA512SUMS line 1: expected '<128 hex digits>" in message
    assert "ubuntu-24.04" not in message
    _assert_untouched(path, before)


def test_dead_server_lists_every_alias_and_writes_nothing(fake, pinned):
    path, doc = pinned
    before = path.read_bytes()
    fake.stop()
    with pytest.raises(RefreshError) as err:
        run(fake, path)
    message = str(err.value)
    assert f"failed for {len(doc)} alias(es)" in message
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
    debian(fake, "11", "20260801-2600")  # would bump, must not be written
    fake.break_listing("/debian/bookworm/", body)
    with pytest.raises(RefreshError) as err:
        run(fake, path)
    message = str(err.value)
    assert "failed for 1 alias(es)" in message and "debian-12" in message and expected in message
    _assert_untouched(path, before)


def test_unknown_alias_is_suggested(fake, pinned):
    path, _ = pinned
    with pytest.raises(RefreshError, match=r"did you mean .*debian-12"):
        run(fake, path, aliases=["debian-21"])


def test_dry_run_and_alias_selection(fake, pinned):
    path, _ = pinned
    before = path.read_bytes()
    for version, codename in (("12", "bookworm"), ("11", "bullseye")):
        fu.publish_snapshot(
            fake,
            "debian",
            ("amd64", "arm64", "ppc64le"),
            version=version,
            codename=codename,
            snapshot="20260801-2600",
        )
    result, _ = run(fake, path, aliases=["debian-12"], dry_run=True)
    assert result.changed == ["debian-12"] and not result.written
    assert path.read_bytes() == before
    assert json.loads(result.new)["debian-12"]["snapshot"] == "20260801-2600"
    assert json.loads(result.new)["debian-11"] == json.loads(before)["debian-11"]


def test_ubuntu_redirect_to_a_foreign_codename_fails(fake, pinned):
    path, doc = pinned
    doc["ubuntu-24.04"]["codename"] = "oracular"
    path.write_bytes(encode_document(doc))
    with pytest.raises(RefreshError, match="not to the catalog's codename 'oracular'"):
        run(fake, path, aliases=["ubuntu-24.04"])


def test_sums_formats_older_entry_point():
    text = b"%s  a.raw\n\n%s *b.img\n" % (b"a" * 128, b"B" * 128)
    assert parse_sums(text, "sha512") == {"a.raw": "a" * 128, "b.img": "b" * 128}
    with pytest.raises(RefreshError, match="line 1"):
        parse_sums(b"%s  a.raw\n" % (b"a" * 64), "sha512")


def test_unknown_root_family_is_refused(fake, pinned):
    path, _ = pinned
    with pytest.raises(RefreshError, match="unknown family 'gentoo'"):
        refresh_catalog(path, roots={"gentoo": fake.base}, log=lambda line: None)


def test_cli_refresh_root_options_and_dry_run(fake, pinned, capsys):
    from pyimagecache.cli import main

    path, _ = pinned
    debian(fake, "13", "20260801-2600", "amd64", "arm64", "ppc64le", "riscv64")
    fu.publish_snapshot(fake, "alpine", version="3.23", snapshot="3.23.5-r0")
    # every family through --root FAMILY=URL, Debian through the older --debian-root
    common = ["--catalog", str(path), "--debian-root", fake.debian_root]
    common += ["--keyring", str(fake.keyring)]
    for family, root in fake.roots().items():
        if family != "debian":
            common += ["--root", f"{family}={root}"]
    before = path.read_bytes()
    assert main(["catalog", "refresh", *common, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert '+    "snapshot": "20260801-2600",' in out and "would bump debian-13, alpine-3.23" in err
    assert path.read_bytes() == before
    assert main(["catalog", "refresh", *common, "--alias", "debian-13"]) == 0
    out, err = capsys.readouterr()
    assert "resolved debian-13 -> 20260801-2600 (was 20260712-2537)" in err
    assert json.loads(path.read_bytes())["debian-13"]["snapshot"] == "20260801-2600"


@pytest.mark.parametrize("spec", ["gentoo=https://x/", "debian", "debian=ftp://x/"])
def test_cli_bad_root_is_a_usage_error(spec, capsys):
    from pyimagecache.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["catalog", "refresh", "--root", spec])
    assert exc.value.code == 2
    assert "--root" in capsys.readouterr().err
