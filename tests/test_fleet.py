"""ensure() from OCI registries, and a registry as a fleet's shared cache: one runner pushes,
another ensures with upstream down and gets identical bytes. A real docker-registry, skopeo
for containerDisk fixtures, our own `push` for the fleet."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, NamedTuple

import pytest
from conftest import require_tool
from faultserver import FaultServer
from registry import LAYER_GZIP, OciLayout, RegistryServer, containerdisk_layer, skopeo_copy

import pyimagecache
from pyimagecache.errors import DownloadError, NoMatchingPlatformError
from pyimagecache.settings import Retry, Settings

MiB = 1 << 20
FAST = Settings(retry=Retry(total=1, backoff_base=0.001, backoff_max=0.002))


def raw_disk(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    data = bytearray(size)
    for start in range(0, size, 512 << 10):
        data[start : start + 4096] = rng.randbytes(4096)
    return bytes(data)


def qcow2_of(work: Path, data: bytes) -> bytes:
    qemu_img = require_tool("qemu-img")
    raw, out = work / "q.raw", work / "q.qcow2"
    raw.write_bytes(data)
    subprocess.run([qemu_img, "convert", "-O", "qcow2", "-c", str(raw), str(out)], check=True)
    return out.read_bytes()


class Fleet(NamedTuple):
    registry: RegistryServer
    work: Path
    disk: bytes  # what disk/disk.qcow2 of containerdisks/demo holds, as raw


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    with RegistryServer(work / "registry") as reg:
        disk = raw_disk(4 * MiB, 1)
        layout = OciLayout(work / "layout")
        layout.tag(
            "demo",
            layout.image(
                [(containerdisk_layer({"disk/disk.qcow2": qcow2_of(work, disk)}), LAYER_GZIP)]
            ),
        )
        skopeo_copy(
            f"oci:{layout.root}:demo",
            f"docker://{reg.address}/containerdisks/demo:1",
            work,
            "--dest-tls-verify=false",
        )
        yield Fleet(reg, work, disk)


def test_ensure_a_containerdisk_by_tag_and_by_digest(fleet: Fleet, tmp_path: Path) -> None:
    ref = fleet.registry.ref("containerdisks/demo:1")
    raw = pyimagecache.ensure(ref, tmp_path / "c", arch="amd64", settings=FAST)
    assert raw.read_bytes() == fleet.disk
    sidecar = json.loads((raw.parent / (raw.name + ".json")).read_text())
    assert sidecar["url"] == ref and sidecar["verified"] is True
    from pyimagecache.oci import resolve

    resolved = resolve(ref, "amd64", FAST)
    pinned = f"oci://{fleet.registry.address}/containerdisks/demo@{resolved.manifest_digest}"
    again = pyimagecache.ensure(pinned, tmp_path / "c", arch="amd64", settings=FAST)
    assert again == raw  # named by the digest the tag resolved to: the same entry
    # docker:// is skopeo's spelling of the same thing.
    docker = "docker://" + ref[len("oci://") :]
    assert pyimagecache.ensure(docker, tmp_path / "c", arch="amd64", settings=FAST) == raw


def test_a_moved_tag_is_a_miss(fleet: Fleet, tmp_path: Path) -> None:
    other = raw_disk(2 * MiB, 2)
    layout = OciLayout(tmp_path / "layout")
    layout.tag("v", layout.image([(containerdisk_layer({"disk/d.raw": other}), LAYER_GZIP)]))
    ref = fleet.registry.ref("containerdisks/moving:latest")
    dest = f"docker://{fleet.registry.address}/containerdisks/moving:latest"
    skopeo_copy(f"oci:{layout.root}:v", dest, tmp_path, "--dest-tls-verify=false")
    first = pyimagecache.ensure(ref, tmp_path / "c", arch="amd64", settings=FAST)
    assert first.read_bytes() == other
    moved = raw_disk(2 * MiB, 3)
    layout.tag("v2", layout.image([(containerdisk_layer({"disk/d.raw": moved}), LAYER_GZIP)]))
    skopeo_copy(f"oci:{layout.root}:v2", dest, tmp_path, "--dest-tls-verify=false")
    second = pyimagecache.ensure(ref, tmp_path / "c", arch="amd64", settings=FAST)
    assert second != first and second.read_bytes() == moved


def test_no_image_for_our_arch_names_the_platforms(fleet: Fleet, tmp_path: Path) -> None:
    with pytest.raises(NoMatchingPlatformError, match="linux/amd64"):
        pyimagecache.ensure(
            fleet.registry.ref("containerdisks/demo:1"),
            tmp_path / "c",
            arch="riscv64",
            settings=FAST,
        )
    assert not list((tmp_path / "c").glob("*.raw")) if (tmp_path / "c").exists() else True


# -- the fleet: push once, then every runner pulls from the registry -----------------------------


def catalog_for(tmp: Path, url: str, data: bytes, *, sha512_only: bool = False) -> Path:
    pins: Dict[str, Any] = {"url": url}
    if sha512_only:
        pins["sha512"] = hashlib.sha512(data).hexdigest()
    else:
        pins["sha256"] = hashlib.sha256(data).hexdigest()
    path = tmp / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "appliance": {
                    "distro": "test",
                    "version": "1",
                    "snapshot": "20260601-1",
                    "arch": {"amd64": pins},
                }
            }
        )
    )
    return path


def cli(*args: str, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagecache", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("sha512_only", [False, True], ids=["sha256-pin", "sha512-pin"])
def test_push_once_then_ensure_with_upstream_down(
    fleet: Fleet, tmp_path: Path, sha512_only: bool
) -> None:
    image = qcow2_of(tmp_path, raw_disk(3 * MiB, 4))
    with FaultServer(image) as upstream:
        catalog = catalog_for(tmp_path, upstream.url, image, sha512_only=sha512_only)
        repo = f"oci://{fleet.registry.address}/fleet-{'512' if sha512_only else '256'}"
        env = dict(os.environ, PYIMAGECACHE_CATALOG=str(catalog))
        env.pop("PYIMAGECACHE_MIRRORS", None)
        pushed = cli(
            "push",
            "appliance",
            repo,
            "--arch",
            "amd64",
            "--cache-dir",
            str(tmp_path / "runner1"),
            env=env,
        )
        assert pushed.returncode == 0, pushed.stderr
        assert ":appliance-20260601-1-amd64@sha256:" in pushed.stdout
        first = (tmp_path / "runner1" / "appliance-20260601-1-amd64.raw").read_bytes()
    # upstream is gone now: runner 2 has only the registry.
    env2 = dict(env, PYIMAGECACHE_MIRRORS=repo)
    done = cli(
        "ensure", "appliance", "--arch", "amd64", "--cache-dir", str(tmp_path / "runner2"), env=env2
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower() and "failed" not in done.stderr
    assert Path(done.stdout.strip()).read_bytes() == first


def test_registry_down_falls_back_to_upstream_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    image = raw_disk(2 * MiB, 5)
    with FaultServer(image) as upstream:
        catalog = catalog_for(tmp_path, upstream.url, image)
        dead = "oci://127.0.0.1:9/fleet"
        with caplog.at_level(logging.WARNING, "pyimagecache"):
            raw = pyimagecache.ensure(
                "appliance",
                tmp_path / "c",
                catalog=catalog,
                arch="amd64",
                settings=FAST,
                mirrors=[dead],
            )
    assert raw.read_bytes() == image
    assert any(dead in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_registry_without_the_file_and_offline_is_one_clear_error(
    fleet: Fleet, tmp_path: Path
) -> None:
    image = raw_disk(MiB, 6)
    catalog = catalog_for(tmp_path, "https://upstream.invalid/x.raw", image)
    repo = f"oci://{fleet.registry.address}/empty"
    with pytest.raises(DownloadError, match="no mirror had the pinned file"):
        pyimagecache.ensure(
            "appliance",
            tmp_path / "c",
            catalog=catalog,
            arch="amd64",
            settings=FAST,
            mirrors=[repo],
            offline=True,
        )
    assert not list((tmp_path / "c").glob("*.raw"))


def test_prune_knows_a_containerdisk_layer_left_by_a_killed_pull(tmp_path: Path) -> None:
    from pyimagecache.inventory import prune

    cache = tmp_path / "c"
    cache.mkdir()
    stale = [
        cache / "demo-abababababab-amd64.img.layer.part",
        cache / "demo-abababababab-amd64.img.layer.part.meta",
        cache / "demo-abababababab-amd64.img.layer",
    ]
    for path in stale:
        path.write_bytes(b"x")
    result = prune(cache, {})
    assert sorted(result.removed) == sorted(stale) and result.skipped == []
