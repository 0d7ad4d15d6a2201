"""Mirrors: a real nginx holding BASE/HOST/PATH, one serving wrong bytes, file:// mirrors,
upstream down, offline mode. The pin decides; a mirror's wrong bytes never reach the cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from conftest import require_tool
from faultserver import FaultServer
from nginx import serve_dir

import pyimagecache
from pyimagecache.errors import DownloadError
from pyimagecache.mirrors import check_mirror, mirror_url, sources
from pyimagecache.settings import Retry, Settings

MiB = 1 << 20
FAST = Settings(retry=Retry(total=1, backoff_base=0.001, backoff_max=0.002))
IMAGE = random.Random(11).randbytes(3 * MiB)
PIN = hashlib.sha256(IMAGE).hexdigest()


@pytest.fixture
def upstream() -> Iterator[FaultServer]:
    with FaultServer(IMAGE) as server:
        yield server


def mirror_tree(root: Path, url: str, data: bytes) -> None:
    """Lay ``data`` out under ``root`` where a mirror keeps ``url``: HOST/PATH."""
    parts = urlsplit(url)
    path = root / parts.netloc / parts.path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def catalog(tmp: Path, url: str) -> Path:
    path = tmp / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "img": {
                    "distro": "test",
                    "version": "1",
                    "snapshot": "20260601-1",
                    "arch": {"amd64": {"url": url, "sha256": PIN}},
                }
            }
        )
    )
    return path


def ensure(tmp: Path, url: str, **kw: Any) -> Path:
    kw.setdefault("settings", FAST)
    return pyimagecache.ensure("img", tmp / "cache", catalog=catalog(tmp, url), arch="amd64", **kw)


def test_mirror_layout_and_order() -> None:
    assert (
        mirror_url("https://m/c/", "https://h:8443/a/b.img?x=1") == "https://m/c/h:8443/a/b.img?x=1"
    )
    assert mirror_url("https://m", "https://user:pw@h/a") == "https://m/h/a"
    assert mirror_url("oci://r/repo", "https://h/a") is None
    assert mirror_url("https://m", "file:///srv/a") is None
    got = sources(
        "https://h/a", ["https://m1", "file:///m2", "oci://r/x"], pinned=True, offline=False
    )
    assert [s.url for s in got] == ["https://m1/h/a", "file:///m2/h/a", None, "https://h/a"]
    assert got[2].registry and got[2].mirror == "oci://r/x"  # asked by digest, not by path
    assert [s.url for s in sources("https://h/a", ["https://m1"], pinned=False, offline=False)] == [
        "https://h/a"
    ]
    assert sources("https://h/a", [], pinned=True, offline=True) == []
    for bad in ("ftp://m", "m.example/path", "https://", "https://m/?q=1"):
        with pytest.raises(ValueError, match="mirror"):
            check_mirror(bad)


@pytest.mark.nginx
def test_nginx_mirror_serves_and_upstream_is_not_contacted(
    tmp_path: Path, upstream: FaultServer
) -> None:
    require_tool("nginx")
    root = tmp_path / "mirror"
    mirror_tree(root, upstream.url, IMAGE)
    with serve_dir(root) as nginx:
        raw = ensure(tmp_path, upstream.url, mirrors=[nginx.base_url])
        assert raw.read_bytes() == IMAGE
        assert [e.status for e in nginx.access_log()] == [200]
    assert upstream.log == []


@pytest.mark.nginx
def test_mirror_with_wrong_bytes_warns_and_upstream_serves(
    tmp_path: Path, upstream: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    require_tool("nginx")
    root = tmp_path / "mirror"
    mirror_tree(root, upstream.url, IMAGE[::-1])  # same size, other bytes
    with serve_dir(root) as nginx, caplog.at_level(logging.WARNING, "pyimagecache"):
        raw = ensure(tmp_path, upstream.url, mirrors=[nginx.base_url])
    assert raw.read_bytes() == IMAGE
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and nginx.base_url in warned[0] and "mismatch" in warned[0], warned
    assert len(upstream.log) == 1


def test_dead_and_missing_mirrors_fall_through_in_order(
    tmp_path: Path, upstream: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    mirrors = ["http://127.0.0.1:9", empty.as_uri()]  # port 9: nobody listens
    with caplog.at_level(logging.WARNING, "pyimagecache"):
        raw = ensure(tmp_path, upstream.url, mirrors=mirrors)
    assert raw.read_bytes() == IMAGE
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in mirrors if any(m in w for w in warned)] == mirrors, warned


def test_file_mirror_from_the_environment_with_upstream_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = "http://127.0.0.1:9/images/disk.img"
    root = tmp_path / "mirror"
    mirror_tree(root, dead, IMAGE)
    monkeypatch.setenv("PYIMAGECACHE_MIRRORS", f"{root.as_uri()} https://unused.invalid")
    raw = ensure(tmp_path, dead, settings=None)
    assert raw.read_bytes() == IMAGE


def test_offline_never_contacts_upstream(tmp_path: Path, upstream: FaultServer) -> None:
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    with pytest.raises(DownloadError, match="no mirror had the pinned file"):
        ensure(tmp_path, upstream.url, mirrors=[empty.as_uri()], offline=True)
    with pytest.raises(DownloadError, match="offline"):
        ensure(tmp_path, upstream.url, offline=True)
    assert upstream.log == []
    assert not list((tmp_path / "cache").glob("*.raw"))
    root = tmp_path / "mirror"
    mirror_tree(root, upstream.url, IMAGE)
    assert ensure(tmp_path, upstream.url, mirrors=[root.as_uri()], offline=True).exists()
    assert upstream.log == []


def test_unpinned_url_uses_upstream_only(tmp_path: Path, upstream: FaultServer) -> None:
    root = tmp_path / "mirror"
    mirror_tree(root, upstream.url, b"not what upstream has")
    raw = pyimagecache.ensure(
        upstream.url, tmp_path / "cache", mirrors=[root.as_uri()], settings=FAST
    )
    assert raw.read_bytes() == IMAGE and len(upstream.log) == 1
    # ... and a literal URL with a pin does use it.
    mirror_tree(root, upstream.url, IMAGE)
    upstream.clear_log()
    other = pyimagecache.ensure(
        upstream.url, tmp_path / "cache2", sha256=PIN, mirrors=[root.as_uri()], settings=FAST
    )
    assert other.read_bytes() == IMAGE and upstream.log == []


def test_partial_from_a_mirror_is_not_continued_from_upstream(tmp_path: Path) -> None:
    with FaultServer(IMAGE) as mirror, FaultServer(IMAGE) as upstream:
        # The mirror holds the file at BASE/HOST/PATH: serve it at that path.
        base = f"http://127.0.0.1:{mirror.port}/m"
        mirror.path = f"/m/127.0.0.1:{upstream.port}/file"
        mirror.schedule("drop:1500000", "500", "500", "500")
        raw = ensure(tmp_path, upstream.url, mirrors=[base])
        assert raw.read_bytes() == IMAGE
        ups = [r for r in upstream.log if r.sent]
        assert len(ups) == 1 and ups[0].range == ""  # started over: another source
        assert any(r.sent >= 1_000_000 for r in mirror.log)  # the mirror did send a part


@pytest.mark.nginx
def test_cli_warning_line_names_the_mirror(tmp_path: Path, upstream: FaultServer) -> None:
    require_tool("nginx")
    root = tmp_path / "mirror"
    mirror_tree(root, upstream.url, IMAGE[::-1])
    with serve_dir(root) as nginx:
        env = dict(os.environ, PYIMAGECACHE_CATALOG=str(catalog(tmp_path, upstream.url)))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pyimagecache",
                "ensure",
                "img",
                "--arch",
                "amd64",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--mirror",
                nginx.base_url,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    warning = [ln for ln in proc.stderr.splitlines() if "mirror" in ln]
    assert len(warning) == 1 and warning[0].startswith("pyimagecache: mirror " + nginx.base_url)
    assert Path(proc.stdout.strip()).read_bytes() == IMAGE
