"""``cache verify [--repair]`` and the content record every cached raw carries; ``ensure
--json``. A raw changed in place is caught by the next ``ensure`` when its size or modification
time moved, and by ``cache verify`` even when its modification time was set back."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
from ensureenv import Env, disk_image, env, server, tamper

from pyimagecache._lock import FileLock
from pyimagecache.contentdigest import file_content_digest
from pyimagecache.verify import BUSY, CHANGED, OK, UNRECORDED, verify_cache

__all__ = ["env", "server"]  # fixtures, imported for pytest


def cli(*args: str, env_vars: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagecache", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env_vars or {})},
    )


def record_of(raw: Path) -> Dict[str, Any]:
    return json.loads(raw.with_name(raw.name + ".json").read_text())


@pytest.fixture
def cached(env: Env) -> Dict[str, Any]:
    """Three entries: an alias (raw source), a URL in xz, a qcow2 alias."""
    raw_disk = disk_image(seed=31)
    env.publish("plain", "plain.img", raw_disk)
    packed = disk_image(seed=32)
    (env.www / "p.img.xz").write_bytes(lzma.compress(packed))
    url = f"{env.server.base}/p.img.xz"
    made = {
        "plain": env.ensure("plain"),
        "url": env.ensure(url, sha256=hashlib.sha256(lzma.compress(packed)).hexdigest()),
    }
    return {"made": made, "data": {"plain": raw_disk, "url": packed}, "url": url}


def test_every_published_raw_records_its_content(env: Env, cached: Dict[str, Any]) -> None:
    for key, raw in cached["made"].items():
        record = record_of(raw)
        assert record["content"] == file_content_digest(raw), key
        assert record["content"].startswith("crc32-1m:")
        assert record["size"] == raw.stat().st_size and record["mtime_ns"] == raw.stat().st_mtime_ns
    assert [f.state for f in verify_cache(env.cache)] == [OK, OK]


def test_verify_catches_a_change_with_the_modification_time_set_back(
    env: Env, cached: Dict[str, Any]
) -> None:
    raw = cached["made"]["url"]
    tamper(raw, keep_mtime=True)
    gets = len(env.server.gets("p.img.xz"))
    assert env.ensure(cached["url"]) == raw  # size and time as recorded: a hit, by design
    assert len(env.server.gets("p.img.xz")) == gets
    run = cli("cache", "verify", "--cache-dir", str(env.cache))
    assert run.returncode == 1, run.stderr
    lines = {line.split()[1]: line for line in run.stdout.splitlines()}
    assert lines[raw.name].startswith(CHANGED) and "set back" in lines[raw.name]
    assert lines[cached["made"]["plain"].name].startswith(OK)
    assert "1 changed" in run.stderr
    doc = json.loads(cli("cache", "verify", "--json", "--cache-dir", str(env.cache)).stdout)
    states = {Path(e["path"]).name: e["state"] for e in doc["entries"]}
    assert states == {raw.name: CHANGED, cached["made"]["plain"].name: OK} and not doc["ok"]


def test_repair_rebuilds_what_changed(env: Env, cached: Dict[str, Any]) -> None:
    for raw in cached["made"].values():
        tamper(raw, keep_mtime=True)
    run = cli("cache", "verify", "--repair", "--cache-dir", str(env.cache))
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.stdout.count("repaired") == 2 and "2 repaired" in run.stderr
    for key, raw in cached["made"].items():
        assert raw.read_bytes() == cached["data"][key], key
    assert [f.state for f in verify_cache(env.cache)] == [OK, OK]
    assert cli("cache", "verify", "--cache-dir", str(env.cache)).returncode == 0


def test_repair_that_cannot_restore_the_same_bytes_says_so(
    env: Env, cached: Dict[str, Any]
) -> None:
    raw = cached["made"]["url"]
    tamper(raw, keep_mtime=True)
    (env.www / "p.img.xz").write_bytes(lzma.compress(disk_image(seed=99)))  # upstream moved on
    run = cli("cache", "verify", "--repair", "--cache-dir", str(env.cache))
    assert run.returncode == 1
    assert "not repaired: " in run.stdout and "mismatch" in run.stdout
    assert record_of(raw)["content"] != file_content_digest(raw)  # still reported next time


def test_an_entry_without_a_content_record_is_reported_and_repaired(
    env: Env, cached: Dict[str, Any]
) -> None:
    raw = cached["made"]["plain"]
    sidecar = raw.with_name(raw.name + ".json")
    old = record_of(raw)
    del old["content"], old["size"], old["mtime_ns"]  # as an older pyimagecache wrote it
    sidecar.write_text(json.dumps(old))
    findings = {f.raw.name: f for f in verify_cache(env.cache)}
    assert findings[raw.name].state == UNRECORDED
    assert env.ensure("plain") == raw  # nothing to compare a hit with: handed out as before
    assert cli("cache", "verify", "--cache-dir", str(env.cache)).returncode == 1
    assert cli("cache", "verify", "--repair", "--cache-dir", str(env.cache)).returncode == 0
    assert record_of(raw)["content"] == file_content_digest(raw)


def test_a_copied_cache_whose_times_changed_is_kept_without_a_download(
    env: Env, cached: Dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    raw = cached["made"]["url"]
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns - 10**12))
    gets = len(env.server.gets("p.img.xz"))
    assert env.ensure(cached["url"]) == raw
    assert len(env.server.gets("p.img.xz")) == gets
    assert record_of(raw)["mtime_ns"] == raw.stat().st_mtime_ns
    assert raw.read_bytes() == cached["data"]["url"]


def test_a_busy_entry_is_not_read(env: Env, cached: Dict[str, Any]) -> None:
    raw = cached["made"]["plain"]
    with FileLock(raw.with_name(raw.name + ".lock")):
        findings = {f.raw.name: f.state for f in verify_cache(env.cache)}
    assert findings[raw.name] == BUSY


def test_an_empty_or_missing_cache_verifies(tmp_path: Path) -> None:
    for directory in (tmp_path / "absent", tmp_path):
        run = cli("cache", "verify", "--cache-dir", str(directory))
        assert run.returncode == 0 and "0 disks" in run.stderr


# -- ensure --json ---------------------------------------------------------------------------------


def test_ensure_json_says_what_it_did(env: Env) -> None:
    data = disk_image(seed=41)
    env.publish("j", "j.img", data)
    common = ["--cache-dir", str(env.cache), "--arch", "amd64", "--json"]
    first = cli("ensure", "j", *common, env_vars={"PYIMAGECACHE_CATALOG": str(env.catalog_path)})
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["hit"] is False and Path(doc["path"]).read_bytes() == data
    assert (doc["alias"], doc["snapshot"], doc["arch"]) == ("j", "20260601-1", "amd64")
    assert doc["url"] == f"{env.server.base}/j.img" and doc["source_format"] == "raw"
    assert doc["digests"] == {"sha256": hashlib.sha256(data).hexdigest()} and doc["verified"]
    assert doc["fallback_from"] is None and doc["content"].startswith("crc32-1m:")
    again = cli("ensure", "j", *common, env_vars={"PYIMAGECACHE_CATALOG": str(env.catalog_path)})
    assert json.loads(again.stdout) == {**doc, "hit": True}


def test_ensure_json_of_a_url_without_a_pin(env: Env) -> None:
    (env.www / "u.img").write_bytes(disk_image(seed=42))
    run = cli("ensure", f"{env.server.base}/u.img", "--cache-dir", str(env.cache), "--json", "-q")
    doc = json.loads(run.stdout)
    assert doc["alias"] is None and doc["verified"] is False and set(doc["digests"]) == {"sha256"}
    assert run.stderr == ""
