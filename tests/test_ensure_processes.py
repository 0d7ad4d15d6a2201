"""ensure() across processes: one download for eight, and recovery after SIGKILL mid-download and
mid-conversion. Slow: every case starts Python subprocesses."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from ensureenv import Env, ImageServer, disk_image

import pyimagecache
from pyimagecache.inventory import prune

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")]

MiB = 1 << 20
CHILD = """
import os, signal, sys
from pyimagecache.cache import ensure_phased
mode, image, cache, catalog = sys.argv[1:5]

def progress_for(phase):
    if mode == "kill-in-convert" and phase == "convert":
        def kill(done, total):
            # The conversion may start while the download still runs (ensure overlaps them):
            # die once the verified download is in the cache, mid-conversion.
            import glob, time
            deadline = time.monotonic() + 30
            while not glob.glob(os.path.join(cache, "*.raw.gz")) and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(os.getpid(), signal.SIGKILL)
        return kill
    return None

print(ensure_phased(image, cache, arch="amd64", catalog=catalog, progress_for=progress_for))
"""


def child(env: Env, alias: str, mode: str = "plain") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, alias, str(env.cache), str(env.catalog_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    www = tmp_path / "www"
    www.mkdir()
    server = ImageServer(www)
    yield Env(tmp_path, server)
    server.close()


def test_eight_processes_one_download(env: Env) -> None:
    image = disk_image(8 * MiB)
    payload = gzip.compress(image, compresslevel=1)
    env.publish("many", "many.raw.gz", payload)
    # The download lasts about two seconds, longer than the processes take to start.
    env.server.rate = max(len(payload) // 2, 16 * 1024)
    procs = [child(env, "many") for _ in range(8)]
    outs: List[str] = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert len(set(outs)) == 1
    assert Path(outs[0]).read_bytes() == image
    assert len(env.server.gets("many.raw.gz")) == 1
    assert env.leftovers() == []


def test_killed_mid_download_resumes(env: Env) -> None:
    image = disk_image(8 * MiB)
    env.publish("slow", "slow.raw", image)
    env.server.rate = 2 * MiB
    proc = child(env, "slow")
    deadline = time.monotonic() + 60
    partials: List[Path] = []
    while time.monotonic() < deadline:
        partials = [p for p in env.cache.glob("*.part")] if env.cache.exists() else []
        if partials and partials[0].stat().st_size >= MiB:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("no partial download appeared")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    raw = env.cache / "slow-20260601-1-amd64.raw"
    assert not raw.exists()  # never a partial raw
    held = partials[0].stat().st_size
    assert 0 < held < len(image)
    env.server.rate = None
    assert env.ensure("slow").read_bytes() == image
    ranges = env.server.gets("slow.raw")
    assert len(ranges) == 2 and ranges[0] is None
    assert ranges[1] is not None and int(ranges[1].split("=")[1].split("-")[0]) > 0
    assert env.leftovers() == []


def test_killed_mid_conversion_redoes_conversion(env: Env) -> None:
    image = disk_image(8 * MiB)
    packed = gzip.compress(image, compresslevel=1)
    env.publish("conv", "conv.raw.gz", packed)
    proc = child(env, "conv", "kill-in-convert")
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    raw = env.cache / "conv-20260601-1-amd64.raw"
    source = env.cache / "conv-20260601-1-amd64.raw.gz"
    assert not raw.exists()
    assert hashlib.sha256(source.read_bytes()).digest() == hashlib.sha256(packed).digest()
    stale = list(env.cache.glob(".*.tmp-*"))
    assert stale, env.files()  # the killed conversion's scratch file
    # Next call: no second download, the conversion is redone.
    assert (
        pyimagecache.ensure("conv", env.cache, arch="amd64", catalog=env.catalog_path).read_bytes()
        == image
    )
    assert len(env.server.gets("conv.raw.gz")) == 1
    assert not source.exists()
    # Prune clears the dead process's scratch file and keeps the entry.
    result = prune(env.cache, pyimagecache.catalog.load_catalog(env.catalog_path))
    # The kill also leaves the download's lock file (a holder removes it on release), and may
    # land between the download's rename and the removal of its resume record: prune removes
    # both, nobody holding them.
    extra = [p for p in result.removed if p not in stale]
    assert set(stale) <= set(result.removed)
    assert all(p.name.endswith((".part.meta", ".lock")) for p in extra), extra
    assert raw.exists() and env.leftovers() == []


def test_prune_skips_files_of_a_live_process(env: Env) -> None:
    image = disk_image(8 * MiB)
    env.publish("live", "live.raw", image)
    env.server.rate = 1 * MiB
    proc = child(env, "live")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if env.cache.exists() and any(env.cache.glob("*.part")):
                break
            time.sleep(0.02)
        partial = next(env.cache.glob("*.part"))
        result = prune(env.cache, pyimagecache.catalog.load_catalog(env.catalog_path))
        assert partial in result.skipped and partial not in result.removed
        assert partial.exists()
    finally:
        env.server.rate = None
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert Path(out.strip()).read_bytes() == image
    assert os.path.exists(out.strip())
