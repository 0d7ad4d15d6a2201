"""ensure() end to end against a local HTTP server and a test catalog pointing at it."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import lzma
import threading
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest
from ensureenv import Env, MiB, disk_image, env, qcow2_of, server, tar_of

import pyimagecache
from pyimagecache.cachefiles import alias_names, url_names
from pyimagecache.errors import (
    CatalogError,
    ChecksumMismatchError,
    ConversionError,
    DownloadError,
    UnknownImageError,
    UnsupportedArchError,
)

__all__ = ["env", "server"]  # fixtures, imported for pytest


def test_alias_raw_is_one_verified_fetch(env: Env) -> None:
    image = disk_image()
    url = env.publish("deb", "deb-amd64.raw", image)
    path = env.ensure("deb")
    assert path == env.cache / "deb-20260601-1-amd64.raw"
    assert path.read_bytes() == image
    assert env.server.gets("deb-amd64.raw") == [None]
    assert env.files() == [path.name, path.name + ".json"]
    sidecar = json.loads((env.cache / (path.name + ".json")).read_text())
    assert sidecar["url"] == url and sidecar["sha256"] == hashlib.sha256(image).hexdigest()
    assert sidecar["snapshot"] == "20260601-1" and sidecar["size"] == len(image)
    assert sidecar["verified"] is True and sidecar["alias"] == "deb"
    assert "T" in sidecar["created"]


def test_cache_hit_no_network_under_10ms(env: Env) -> None:
    env.publish("deb", "deb.raw", disk_image())
    first = env.ensure("deb")
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        assert env.ensure("deb") == first
        timings.append(time.perf_counter() - start)
    assert env.server.gets("deb.raw") == [None]
    assert min(timings) < 0.010, timings
    assert sorted(timings)[len(timings) // 2] < 0.010, timings


def test_snapshot_bump_is_a_miss(env: Env) -> None:
    env.publish("deb", "deb.raw", disk_image(seed=1))
    old = env.ensure("deb")
    env.publish("deb", "deb2.raw", disk_image(seed=2), snapshot="20260701-1")
    new = env.ensure("deb")
    assert new != old and new.name == "deb-20260701-1-amd64.raw"
    assert new.read_bytes() == disk_image(seed=2)


@pytest.mark.qemu
@pytest.mark.parametrize("keep_source", [False, True])
def test_alias_qcow2_is_converted(env: Env, keep_source: bool) -> None:
    image = disk_image()
    env.publish("ubu", "ubu-cloudimg-amd64.img", qcow2_of(env.tmp, image))
    calls: List[Tuple[int, Optional[int]]] = []
    path = env.ensure("ubu", progress=lambda d, t: calls.append((d, t)), keep_source=keep_source)
    assert path.name == "ubu-20260601-1-amd64.raw"
    assert path.read_bytes() == image
    assert path.stat().st_blocks * 512 < 2 * MiB  # sparse: ~200 KiB of data in 4 MiB
    source = env.cache / "ubu-20260601-1-amd64.img"
    assert source.exists() == keep_source
    assert json.loads((env.cache / (path.name + ".json")).read_text())["source_format"] == "qcow2"
    assert calls and env.leftovers() == []


def _containers() -> List[Tuple[str, Any]]:
    def zst(b: bytes) -> bytes:
        zstandard = pytest.importorskip("zstandard")
        return bytes(zstandard.ZstdCompressor(write_checksum=True).compress(b))

    return [
        ("x.raw.xz", lambda b: lzma.compress(b, preset=0)),
        ("x.raw.gz", lambda b: gzip.compress(b, compresslevel=1)),
        ("x.raw.zst", zst),
        ("debian-nocloud.tar.xz", lambda b: lzma.compress(tar_of("disk.raw", b), preset=0)),
        ("x.tar.gz", lambda b: gzip.compress(tar_of("disk.raw", b), compresslevel=1)),
        ("x.tar", lambda b: tar_of("disk.raw", b)),
    ]


@pytest.mark.parametrize(("filename", "pack"), _containers())
def test_compressed_containers(env: Env, filename: str, pack: Any) -> None:
    image = disk_image()
    env.publish("c", filename, pack(image))
    path = env.ensure("c")
    assert path.name == "c-20260601-1-amd64.raw"
    assert path.read_bytes() == image
    assert path.stat().st_blocks * 512 < 2 * MiB
    ext = filename[1:] if filename.startswith(".") else filename.split(".", 1)[1]
    assert not (env.cache / f"c-20260601-1-amd64.{ext}").exists()  # source removed
    assert env.leftovers() == []


@pytest.mark.qemu
def test_compressed_qcow2(env: Env) -> None:
    image = disk_image()
    env.publish("cq", "x.qcow2.xz", lzma.compress(qcow2_of(env.tmp, image), preset=0))
    assert env.ensure("cq").read_bytes() == image
    assert env.leftovers() == []


def test_raw_source_under_another_extension_is_renamed(env: Env) -> None:
    image = disk_image()
    env.publish("r", "r.img", image)
    path = env.ensure("r")
    assert path.read_bytes() == image
    assert env.files() == [path.name, path.name + ".json"]


def test_raw_named_url_serving_a_container(env: Env) -> None:
    image = disk_image()
    env.publish("lie", "lie.raw", gzip.compress(image, compresslevel=1))
    path = env.ensure("lie")
    assert path.read_bytes() == image
    assert env.files() == [path.name, path.name + ".json"]


def test_checksum_mismatch_caches_nothing(env: Env) -> None:
    env.publish("bad", "bad.raw", disk_image(), sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError):
        env.ensure("bad")
    assert env.files() == []


def test_failed_conversion_removes_source_and_raw(env: Env) -> None:
    broken = lzma.compress(tar_of("README", b"no disk here"))
    env.publish("broken", "broken.tar.xz", broken)
    with pytest.raises(ConversionError, match="broken.*no disk image") as info:
        env.ensure("broken")
    assert info.value.__cause__ is not None
    assert env.files() == []


def test_unsupported_arch_before_any_network(env: Env) -> None:
    env.publish("amd-only", "a.raw", disk_image(), arches=("amd64",))
    with pytest.raises(UnsupportedArchError, match="amd-only.*arm64.*amd64"):
        env.ensure("amd-only", arch="aarch64")
    assert env.server.requests == []


def test_unknown_image_suggests_aliases(env: Env, tmp_path: Path) -> None:
    env.publish("debian-12", "d.raw", disk_image())
    with pytest.raises(UnknownImageError, match="did you mean debian-12"):
        env.ensure("debain-12")
    local = tmp_path / "disk.img"
    local.write_bytes(b"x")
    with pytest.raises(UnknownImageError, match="file://"):
        env.ensure(str(local))
    with pytest.raises(UnknownImageError):
        env.ensure("ftp://example.org/x.raw")


def test_literal_url_naming_and_collisions(env: Env) -> None:
    (env.www / "a").mkdir()
    (env.www / "b").mkdir()
    one, two = disk_image(seed=1), disk_image(seed=2)
    (env.www / "a" / "x.raw").write_bytes(one)
    (env.www / "b" / "x.raw").write_bytes(two)
    url_a, url_b = f"{env.server.base}/a/x.raw", f"{env.server.base}/b/x.raw?sig=2"
    path_a, path_b = env.ensure(url_a), env.ensure(url_b)
    assert path_a != path_b
    assert path_a.name == url_names(url_a).raw and path_a.name.startswith("x-")
    assert ".raw.raw" not in path_a.name and path_a.parent == env.cache
    assert (path_a.read_bytes(), path_b.read_bytes()) == (one, two)
    sidecar = json.loads((env.cache / (path_a.name + ".json")).read_text())
    assert sidecar["verified"] is False and sidecar["sha256"] == hashlib.sha256(one).hexdigest()
    assert env.ensure(url_a) == path_a and len(env.server.gets("a/x.raw")) == 1


def test_literal_url_with_sha256(env: Env) -> None:
    image = disk_image()
    (env.www / "v.raw").write_bytes(image)
    url = f"{env.server.base}/v.raw"
    with pytest.raises(ChecksumMismatchError):
        env.ensure(url, sha256="1" * 64)
    assert not (env.cache / url_names(url).raw).exists()
    good = hashlib.sha256(image).hexdigest()
    path = env.ensure(url, sha256=good.upper())
    assert path.read_bytes() == image
    assert json.loads((env.cache / (path.name + ".json")).read_text())["verified"] is True


def test_unverified_hit_rechecked_against_a_given_sha256(env: Env) -> None:
    image = disk_image(seed=3)
    (env.www / "u.raw").write_bytes(image)
    url = f"{env.server.base}/u.raw"
    env.ensure(url)
    path = env.ensure(url, sha256=hashlib.sha256(image).hexdigest())  # sidecar matches: hit
    assert len(env.server.gets("u.raw")) == 1
    (env.www / "u.raw").write_bytes(disk_image(seed=4))  # upstream changed
    new = hashlib.sha256(disk_image(seed=4)).hexdigest()
    assert env.ensure(url, sha256=new) == path
    assert path.read_bytes() == disk_image(seed=4) and len(env.server.gets("u.raw")) == 2


def test_file_url(env: Env, tmp_path: Path) -> None:
    image = disk_image()
    src = tmp_path / "local image.raw"
    src.write_bytes(image)
    path = env.ensure(src.as_uri())
    assert path.read_bytes() == image and path.name.startswith("local_image-")


@pytest.mark.parametrize(
    "tail",
    [
        "..",
        "../..",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e",
        ".hidden.raw",
        "a%00b.raw",
        "x.raw%2f..",
        "%2fetc%2fpasswd",
    ],
)
def test_url_path_traversal_stays_in_cache(env: Env, tail: str) -> None:
    names = url_names(f"{env.server.base}/{tail}")
    for name in (names.raw, names.source, names.sidecar, names.lock):
        assert (env.cache / name).resolve().parent == env.cache.resolve()
        assert not name.startswith(".")
    with pytest.raises(DownloadError):  # the server has none of these
        env.ensure(f"{env.server.base}/{tail}")
    # Whatever the failed download left (an empty partial) is inside the cache, named by us.
    assert all(n.startswith(names.source) or n.startswith(names.raw) for n in env.files())
    assert sorted(p.name for p in env.tmp.iterdir()) == ["cache", "www"]


@pytest.mark.parametrize(
    ("alias", "snapshot"), [("../../evil", "1"), ("ok", "../../../tmp/x"), ("ok", "/abs")]
)
def test_catalog_path_traversal_rejected(env: Env, alias: str, snapshot: str) -> None:
    env.catalog_path.write_text(
        json.dumps(
            {
                alias: {
                    "distro": "d",
                    "version": "1",
                    "snapshot": snapshot,
                    "arch": {"amd64": {"url": f"{env.server.base}/x.raw", "sha256": "a" * 64}},
                }
            }
        )
    )
    with pytest.raises(CatalogError, match="file-name safe"):
        env.ensure(alias)
    assert not env.cache.exists() and env.server.requests == []


def test_malformed_catalog_raises_catalog_error(env: Env) -> None:
    env.catalog_path.write_text('{"x": {"distro": "d"}}')
    with pytest.raises(CatalogError, match="'x'"):
        env.ensure("x")
    with pytest.raises(CatalogError):
        pyimagecache.aliases(env.catalog_path)


def test_environment_catalog_and_cache_dir(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    image = disk_image()
    env.publish("envd", "e.raw", image)
    monkeypatch.setenv("PYIMAGECACHE_CATALOG", str(env.catalog_path))
    monkeypatch.setenv("PYIMAGECACHE_CACHE_DIR", str(env.cache))
    path = pyimagecache.ensure("envd", arch="x86_64")
    assert path.parent == env.cache and path.read_bytes() == image


def test_logs_first_run_at_info(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.publish("logd", "l.raw", disk_image())
    with caplog.at_level(logging.INFO, logger="pyimagecache"):
        env.ensure("logd")
    messages = [r.getMessage() for r in caplog.records if r.name == "pyimagecache"]
    assert any("first run, this can take a few minutes" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pyimagecache"):
        env.ensure("logd")
    assert caplog.records == []


def test_threads_share_one_download(env: Env) -> None:
    image = disk_image(8 * MiB)
    env.publish("t", "t.raw.gz", gzip.compress(image, compresslevel=1))
    results: List[Any] = []

    def run() -> None:
        try:
            results.append(env.ensure("t"))
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and isinstance(results[0], Path), results
    assert len(env.server.gets("t.raw.gz")) == 1
    assert results[0].read_bytes() == image


def test_resumes_from_a_partial(env: Env) -> None:
    image = disk_image(8 * MiB)
    env.publish("p", "p.raw", image)
    env.cache.mkdir()
    # What a download killed half-way leaves: the fetch helper's own partial and validators.
    # Produce them with fetch itself by interrupting it from its progress callback.
    from pyimagecache.download import fetch

    class Stop(BaseException):
        pass

    def stop_half_way(done: int, total: Optional[int]) -> None:
        if done >= len(image) // 2:
            raise Stop

    dest = env.cache / alias_names("p", "20260601-1", "amd64", f"{env.server.base}/p.raw").source
    with pytest.raises(Stop):
        fetch(
            f"{env.server.base}/p.raw",
            dest,
            sha256=hashlib.sha256(image).hexdigest(),
            progress=stop_half_way,
        )
    assert not dest.exists()
    assert env.ensure("p").read_bytes() == image
    ranges = env.server.gets("p.raw")
    assert len(ranges) == 2 and ranges[1] is not None and ranges[1] != "bytes=0-", ranges
