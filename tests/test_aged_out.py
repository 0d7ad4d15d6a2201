"""ensure() when a pin aged out (its snapshot pruned upstream): a verified newer disk with a
warning and ``fallback_from`` in the sidecar, or, strict or without a usable newer snapshot,
one clear error and nothing cached."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator

import fakeupstreams as fu
import pytest
from conftest import require_tool
from fakeupstream import FakeUpstream
from gpgkeys import ThrowawayKey, shared_key

import pyimagecache
from pyimagecache.errors import ChecksumMismatchError, DownloadError
from pyimagecache.inventory import list_entries
from pyimagecache.settings import Retry, Settings

FAST = Settings(timeout=5.0, retry=Retry(total=0, backoff_base=0.001, backoff_max=0.002))
OLD, NEW = "20260601-2496", "20260801-2600"


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(image_size=8 * 1024) as server:
        yield server


def setup(fake: FakeUpstream, tmp: Path, *, newer: bool = True) -> Dict[str, Any]:
    """debian-12 pinned at OLD on ``fake``; OLD's directory pruned; NEW published if asked."""
    doc = fu.seed(fake, aliases=["debian-12"])
    entry = doc["debian-12"]
    seeded = entry["snapshot"]  # the embedded pin's snapshot: not part of this story
    for path in [p for p in fake.files if f"/{seeded}/" in p]:
        fake.remove(path)
    entry["snapshot"] = OLD
    for arch, slot in entry["arch"].items():
        old = fu.publish_snapshot(
            fake, "debian", [arch], version="12", codename="bookworm", snapshot=OLD
        )[arch]
        slot["url"] = fake.url(old)
        slot["sha512"] = fake.sha(old, "sha512")
    (tmp / "catalog.json").write_text(json.dumps(doc))
    if newer:
        published = fu.publish_snapshot(
            fake, "debian", list(entry["arch"]), version="12", codename="bookworm", snapshot=NEW
        )
        doc["_new"] = published  # arch -> image path (the test's own note, not catalog data)
    for path in [p for p in fake.files if f"/{OLD}/" in p]:
        fake.remove(path)
    return doc


def ensure(tmp: Path, **kw: Any) -> Path:
    kw.setdefault("settings", FAST)
    return pyimagecache.ensure(
        "debian-12", tmp / "cache", catalog=tmp / "catalog.json", arch="amd64", **kw
    )


def test_pin_gone_uses_the_newer_snapshot_with_a_warning(
    fake: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup(fake, tmp_path)
    with caplog.at_level(logging.WARNING, "pyimagecache"):
        raw = ensure(tmp_path)
    assert raw.name == f"debian-12-{NEW}-amd64.raw"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and all(w in warned[0] for w in ("debian-12", OLD, NEW)), warned
    sidecar = json.loads((raw.parent / (raw.name + ".json")).read_text())
    assert sidecar["fallback_from"] == OLD and sidecar["snapshot"] == NEW
    assert sidecar["verified"] is True and len(sidecar["sha512"]) == 128
    listed = list_entries(tmp_path / "cache", {})
    assert [e.fallback_from for e in listed] == [OLD]
    # The next call finds the stand-in without the network.
    fake.clear_log()
    assert ensure(tmp_path) == raw
    assert fake.requests == []  # not even a listing


def test_strict_refuses_naming_alias_snapshot_and_fix(fake: FakeUpstream, tmp_path: Path) -> None:
    setup(fake, tmp_path)
    with pytest.raises(DownloadError) as info:
        ensure(tmp_path, settings=FAST.replace(strict=True))
    message = str(info.value)
    assert "debian-12" in message and OLD in message and "strict" in message
    assert "pyimagecache catalog refresh" in message and info.value.status == 404
    assert not list((tmp_path / "cache").glob("*.raw"))


def test_strict_from_the_environment(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(fake, tmp_path)
    monkeypatch.setenv("PYIMAGECACHE_STRICT", "1")
    with pytest.raises(DownloadError, match="strict mode forbids a fallback"):
        pyimagecache.ensure(
            "debian-12",
            tmp_path / "cache",
            catalog=tmp_path / "catalog.json",
            arch="amd64",
            retries=0,
        )


def test_no_newer_snapshot_is_one_clear_error(fake: FakeUpstream, tmp_path: Path) -> None:
    setup(fake, tmp_path, newer=False)
    with pytest.raises(DownloadError, match=rf"{OLD} is gone upstream .* no newer one"):
        ensure(tmp_path)
    assert not list((tmp_path / "cache").glob("*.raw"))


def test_tampered_sums_of_the_newer_snapshot_cache_nothing(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    image = setup(fake, tmp_path)["_new"]["amd64"]
    sums = next(p for p in fake.sums if f"/{NEW}/" in p)
    fake.corrupt_sum(sums, image.rsplit("/", 1)[-1])
    with pytest.raises(ChecksumMismatchError, match="SHA-512 mismatch"):
        ensure(tmp_path)
    assert not list((tmp_path / "cache").glob("*.raw"))


def test_a_mismatch_on_the_pin_itself_is_never_a_reason_to_fall_back(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    doc = setup(fake, tmp_path)
    old_path = fu.publish_snapshot(
        fake, "debian", ["amd64"], version="12", codename="bookworm", snapshot=OLD
    )["amd64"]  # the pinned file is back ...
    fake.files[old_path] = b"\0" + fake.files[old_path][1:]  # ... with other bytes
    assert doc["debian-12"]["arch"]["amd64"]["url"] == fake.url(old_path)
    with pytest.raises(ChecksumMismatchError):
        ensure(tmp_path)
    assert not list((tmp_path / "cache").glob("*.raw"))


def test_cli_strict_is_one_error_line(fake: FakeUpstream, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    setup(fake, tmp_path)
    env = dict(os.environ, PYIMAGECACHE_CATALOG=str(tmp_path / "catalog.json"))
    env.pop("PYIMAGECACHE_STRICT", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyimagecache",
            "ensure",
            "debian-12",
            "--arch",
            "amd64",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--strict",
            "--retries",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("pyimagecache: error: ")]
    assert len(errors) == 1 and "strict" in errors[0] and OLD in errors[0], proc.stderr


def ubuntu_gone(fake: FakeUpstream, tmp: Path, signer: Any = "own") -> Dict[str, Any]:
    """ubuntu-24.04 pinned on ``fake``, its pinned snapshot pruned, a newer one published
    (signed by ``signer``: the fake's own key, another, or None for none)."""
    doc = fu.seed(fake, aliases=["ubuntu-24.04"])
    entry = doc["ubuntu-24.04"]
    (tmp / "catalog.json").write_text(json.dumps(doc))
    if signer != "own":
        fake.signer = signer
    fu.publish_snapshot(
        fake,
        "ubuntu",
        ["amd64"],
        version="24.04",
        codename="noble",
        snapshot="release-20260801",
    )
    for path in [p for p in fake.files if f"/{entry['snapshot']}/" in p]:
        fake.remove(path)
    return doc


def ensure_ubuntu(tmp: Path, settings: Settings) -> Path:
    return pyimagecache.ensure(
        "ubuntu-24.04", tmp / "cache", catalog=tmp / "catalog.json", arch="amd64", settings=settings
    )


def test_a_well_signed_newer_snapshot_is_used_and_the_warning_names_the_key(
    fake: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_tool("gpgv")
    ubuntu_gone(fake, tmp_path)
    with caplog.at_level(logging.WARNING, "pyimagecache"):
        raw = ensure_ubuntu(tmp_path, FAST.replace(keyring=fake.keyring))
    assert raw.name == "ubuntu-24.04-release-20260801-amd64.raw"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and f"signature verified, key {shared_key().fingerprint}" in warned[0]


@pytest.mark.parametrize("signer", ["stranger", None])
def test_a_newer_snapshot_not_well_signed_is_refused_and_nothing_cached(
    fake: FakeUpstream, tmp_path: Path, signer: Any
) -> None:
    require_tool("gpgv")
    if signer == "stranger":
        signer = ThrowawayKey.make(tmp_path / "gnupg", "stranger").detach
    ubuntu_gone(fake, tmp_path, signer)
    with pytest.raises(DownloadError) as err:
        ensure_ubuntu(tmp_path, FAST.replace(keyring=fake.keyring))
    message = str(err.value)
    assert "no newer one could be used" in message and "release-20260801 refused (" in message
    assert ("not in the keyring" if signer else "no SHA256SUMS.gpg beside") in message
    assert not list((tmp_path / "cache").glob("*.raw"))
    assert [r.status for r in fake.image_requests()] == [404]  # only the pruned pin was asked


def test_the_fallback_settings_come_from_the_environment(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PYIMAGECACHE_REQUIRE_SIGNATURES refuses Debian's unsigned fallback;
    PYIMAGECACHE_NO_VERIFY_SIGNATURES lets one through without gpgv, and says so."""
    setup(fake, tmp_path)
    monkeypatch.setenv("PYIMAGECACHE_REQUIRE_SIGNATURES", "1")
    with pytest.raises(DownloadError, match="Debian publishes no signature"):
        pyimagecache.ensure(
            "debian-12", tmp_path / "cache", catalog=tmp_path / "catalog.json", arch="amd64"
        )
    monkeypatch.delenv("PYIMAGECACHE_REQUIRE_SIGNATURES")
    assert (
        Settings.from_environment({"PYIMAGECACHE_NO_VERIFY_SIGNATURES": "1"}).verify_signatures
        is False
    )
    ubuntu_gone(fake, tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gpgv
    with pytest.raises(DownloadError, match="gpgv is not installed"):
        ensure_ubuntu(tmp_path, FAST)
    raw = ensure_ubuntu(tmp_path, FAST.replace(verify_signatures=False))
    assert raw.name == "ubuntu-24.04-release-20260801-amd64.raw"
