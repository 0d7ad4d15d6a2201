"""No lost work: a full disk or a signal never costs a verified download or leaves a partial
output; the space check fails before anything is written, with the numbers.

The full disk is a real one: a small tmpfs mounted by the test (root, as in CI), grown with
``mount -o remount`` to show that the next run finishes without downloading again.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from conftest import require_tool
from faultserver import FaultServer

import pyimagecache
from pyimagecache.errors import ConversionError, InsufficientSpaceError
from pyimagecache.settings import Retry, Settings

MiB = 1 << 20
FAST = Settings(retry=Retry(total=2, backoff_base=0.001, backoff_max=0.005))


class SmallFS:
    """A tmpfs of a given size at ``path``; ``resize`` grows it in place."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        path.mkdir()
        mount = require_tool("mount")
        done = subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs (CI runs as root): {done.stderr.strip()}")
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def resize(self, size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFS]:
    fs = SmallFS(tmp_path / "fs", 8 * MiB)
    yield fs
    fs.close()


def disk_bytes(size: int, data: int, seed: int) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(size)
    for start in range(0, data, 256 << 10):
        buf[start : start + (256 << 10)] = rng.randbytes(256 << 10)
    return bytes(buf)


def qcow2_of(tmp: Path, data: bytes) -> bytes:
    qemu_img = require_tool("qemu-img")
    raw, out = tmp / "q.raw", tmp / "q.qcow2"
    raw.write_bytes(data)
    subprocess.run(
        [qemu_img, "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True
    )
    image = out.read_bytes()
    raw.unlink()
    out.unlink()
    return image


def files(cache: Path) -> List[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


def gets(server: FaultServer) -> int:
    return sum(1 for r in server.log if r.sent)


def test_download_larger_than_the_free_space_fails_before_writing(small_fs: SmallFS) -> None:
    payload = random.Random(1).randbytes(12 * MiB)  # more than the 8 MiB filesystem
    cache = small_fs.path / "cache"
    with FaultServer(payload) as server, pytest.raises(InsufficientSpaceError) as info:
        pyimagecache.ensure(
            server.url, cache, sha256=hashlib.sha256(payload).hexdigest(), settings=FAST
        )
    err = info.value
    assert err.needed == len(payload) and 0 < err.free < len(payload)
    assert str(err.needed) in str(err) and str(err.free) in str(err) and err.path in str(err)
    assert files(cache) == []  # not even an empty partial


@pytest.mark.qemu
def test_conversion_without_room_keeps_the_verified_download(
    small_fs: SmallFS, tmp_path: Path
) -> None:
    disk = disk_bytes(16 * MiB, 6 * MiB, 2)  # a 16 MiB disk holding 6 MiB of data
    image = qcow2_of(tmp_path, disk)  # ~6 MiB: fits the filesystem, the raw does not too
    cache = small_fs.path / "cache"
    with FaultServer(image) as server:
        pin = hashlib.sha256(image).hexdigest()
        with pytest.raises(ConversionError, match="kept the verified download") as info:
            pyimagecache.ensure(server.url, cache, sha256=pin, settings=FAST)
        cause = info.value.__cause__
        assert isinstance(cause, InsufficientSpaceError), repr(cause)  # found before writing
        assert cause.needed >= 6 * MiB and cause.free < cause.needed
        sources = [n for n in files(cache) if not n.endswith(".raw")]
        assert len(sources) == 1 and not sources[0].startswith(".")  # the verified source
        assert gets(server) == 1
        small_fs.resize(64 * MiB)
        raw = pyimagecache.ensure(server.url, cache, sha256=pin, settings=FAST)
        assert gets(server) == 1  # converted from the kept download: no second download
    assert raw.read_bytes() == disk


def test_unpack_hitting_enospc_keeps_the_verified_download(small_fs: SmallFS) -> None:
    disk = disk_bytes(16 * MiB, 5 * MiB, 3)
    packed = lzma.compress(disk, preset=0)  # ~5 MiB: random data does not compress
    cache = small_fs.path / "cache"
    with FaultServer(packed) as server:
        pin = hashlib.sha256(packed).hexdigest()
        # The unpacked size is not known before unpacking: this is a real ENOSPC mid-way.
        with pytest.raises(ConversionError, match="kept the verified download") as info:
            pyimagecache.ensure(server.url, cache, sha256=pin, settings=FAST)
        assert "No space left on device" in str(info.value)
        left = files(cache)
        assert len(left) == 1 and not left[0].startswith(".") and ".part" not in left[0], left
        small_fs.resize(64 * MiB)
        raw = pyimagecache.ensure(server.url, cache, sha256=pin, settings=FAST)
        assert gets(server) == 1
    assert raw.read_bytes() == disk
    assert json.loads((cache / (raw.name + ".json")).read_text())["source_format"] == "xz"


def test_corrupt_source_is_removed_and_the_error_says_so(tmp_path: Path) -> None:
    broken = lzma.compress(b"not a disk at all" * 1000)[:-20]  # truncated xz
    cache = tmp_path / "cache"
    pin = hashlib.sha256(broken).hexdigest()
    with (
        FaultServer(broken) as server,
        pytest.raises(ConversionError, match="is at fault, removed it"),
    ):
        pyimagecache.ensure(server.url, cache, sha256=pin, settings=FAST)
    assert files(cache) == []


# -- signals ------------------------------------------------------------------------------------


def cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "pyimagecache", *args]


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.02)


def assert_one_line_exit(proc: subprocess.Popen[str], code: int) -> None:
    """The exit status of the signal, one line saying so, and no traceback."""
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    word = "interrupted" if code == 130 else "terminated"
    said = [ln for ln in err.splitlines() if ln.startswith(f"pyimagecache: {word}")]
    assert len(said) == 1 and err.rstrip().endswith(said[0]), err
    assert "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_download_keeps_the_partial_and_resumes(
    tmp_path: Path, sig: int, code: int
) -> None:
    payload = disk_bytes(8 * MiB, 8 * MiB, 4)
    pin = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"
    with FaultServer(payload, rate=4 * MiB) as server:
        proc = subprocess.Popen(
            cli("ensure", server.url, "--cache-dir", str(cache), "--sha256", pin),
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: (
                any(
                    p.name.endswith(".part") and p.stat().st_size > MiB
                    for p in cache.glob("*.part")
                )
                if cache.exists()
                else False
            )
        )
        proc.send_signal(sig)
        assert_one_line_exit(proc, code)
        assert [n for n in files(cache) if n.startswith(".")] == []  # no temporaries
        parts = list(cache.glob("*.part"))
        assert parts and parts[0].stat().st_size > MiB  # kept for the resume
        server.rate = None
        done = subprocess.run(
            cli("ensure", server.url, "--cache-dir", str(cache), "--sha256", pin),
            capture_output=True,
            text=True,
            check=True,
        )
        assert server.log[-1].range.startswith("bytes=") and server.log[-1].range != "bytes=0-"
    assert Path(done.stdout.strip()).read_bytes() == payload


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_convert_and_copy_leaves_no_temporary(
    tmp_path: Path, sig: int, code: int
) -> None:
    qemu_img = require_tool("qemu-img")
    big = tmp_path / "big.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(big), "4G"], check=True)
    qemu_io = require_tool("qemu-io")
    subprocess.run(
        [qemu_io, "-f", "qcow2", "-c", "write -P 0x5a 0 1536M", str(big)],
        check=True,
        capture_output=True,
    )
    for command in (["convert", str(big), str(tmp_path / "out.raw"), "--sync"],):
        (tmp_path / "out.raw").write_bytes(b"keep me")
        proc = subprocess.Popen(cli(*command), stderr=subprocess.PIPE, text=True)
        wait_for(lambda: any(tmp_path.glob(".out.raw.tmp-*")))
        time.sleep(0.2)
        proc.send_signal(sig)
        assert_one_line_exit(proc, code)
        assert (tmp_path / "out.raw").read_bytes() == b"keep me"
        assert not list(tmp_path.glob(".*tmp-*"))
    raw = tmp_path / "src.raw"
    with open(raw, "wb") as f:  # 1 GiB of allocated blocks: long enough to be interrupted
        block = os.urandom(1 << 20)
        for _ in range(1024):
            f.write(block)
    for _ in range(5):
        proc = subprocess.Popen(
            cli("copy", str(raw), str(tmp_path / "vm.raw"), "--sync"),
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda p=proc: any(tmp_path.glob(".vm.raw.tmp-*")) or p.poll() is not None)
        if proc.poll() is not None:
            proc.communicate()
            (tmp_path / "vm.raw").unlink()
            continue  # finished before the signal came: try again
        proc.send_signal(sig)
        assert_one_line_exit(proc, code)
        assert not list(tmp_path.glob(".vm.raw.tmp-*"))
        assert not (tmp_path / "vm.raw").exists()
        break
    else:
        pytest.fail("copy always finished before it could be interrupted")
