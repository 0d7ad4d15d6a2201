"""Digests as pip, pooch and OCI users write them; ``fetch`` of a file already there with its
digest makes no request at all; and no lock file is left behind, whatever happened."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
from faultserver import FaultServer

import pyimagecache
from pyimagecache import ChecksumMismatchError, DigestError, DownloadError, fetch
from pyimagecache._lock import FileLock, in_use
from pyimagecache.hashing import parse_digest

DATA = os.urandom(300 * 1024)  # a disk-sized body: whole 512-byte sectors
SHA256 = hashlib.sha256(DATA).hexdigest()
SHA512 = hashlib.sha512(DATA).hexdigest()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(DATA) as s:
        yield s


def names(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagecache", *args], capture_output=True, text=True, timeout=60
    )


# -- sha256:<hex> -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [SHA256, f"sha256:{SHA256}", f"SHA256:{SHA256.upper()}", f"  sha256:{SHA256}\n"],
    ids=["bare", "prefixed", "upper", "spaces"],
)
def test_a_digest_with_or_without_its_prefix(text: str) -> None:
    assert parse_digest(text, "sha256") == SHA256


@pytest.mark.parametrize(
    "text, algorithm, message",
    [
        (f"sha512:{SHA512}", "sha256", "expected a sha256 digest, got a sha512 one"),
        (f"sha256:{SHA256}", "sha512", "expected a sha512 digest, got a sha256 one"),
        (f"md5:{SHA256}", "sha256", "unknown digest algorithm 'md5'"),
        (f"sha256:{SHA256[:-1]}", "sha256", "64 hexadecimal digits"),
        ("sha256:", "sha256", "64 hexadecimal digits"),
    ],
)
def test_a_wrong_prefix_is_an_error_naming_both(text: str, algorithm: str, message: str) -> None:
    with pytest.raises(DigestError, match=message) as info:
        parse_digest(text, algorithm)
    assert isinstance(info.value, ValueError)


def test_prefixed_digests_in_the_api(server: FaultServer, tmp_path: Path) -> None:
    dest = fetch(server.url, tmp_path / "a", sha256=f"sha256:{SHA256}", sha512=f"sha512:{SHA512}")
    assert dest.read_bytes() == DATA
    with pytest.raises(DigestError, match="expected a sha256 digest, got a sha512 one"):
        fetch(server.url, tmp_path / "b", sha256=f"sha512:{SHA512}")
    with pytest.raises(ChecksumMismatchError):
        fetch(server.url, tmp_path / "c", sha256="sha256:" + "0" * 64)
    raw = pyimagecache.ensure(server.url, tmp_path / "cache", sha512=f"SHA512:{SHA512.upper()}")
    assert raw.read_bytes() == DATA
    with pytest.raises(DigestError, match="got a sha256 one"):
        pyimagecache.ensure(server.url, tmp_path / "cache", sha512=f"sha256:{SHA256}")


def test_prefixed_digests_on_the_command_line(server: FaultServer, tmp_path: Path) -> None:
    proc = cli("fetch", server.url, str(tmp_path / "a"), "--sha256", f"sha256:{SHA256}", "-q")
    assert proc.returncode == 0 and (tmp_path / "a").read_bytes() == DATA, proc
    proc = cli("fetch", server.url, str(tmp_path / "b"), "--sha256", f"sha512:{SHA512}")
    assert proc.returncode == 2 and not (tmp_path / "b").exists()
    assert proc.stderr.splitlines()[-1].endswith(
        "argument --sha256: expected a sha256 digest, got a sha512 one: 'sha512:"
        + SHA512[:13]
        + "...'"
    ), proc.stderr


# -- fetch of a file that is already there ------------------------------------------------------


def test_no_request_when_dest_already_has_the_digest(server: FaultServer, tmp_path: Path) -> None:
    dest = tmp_path / "disk.img"
    fetch(server.url, dest, sha256=SHA256)
    assert len(server.log) == 1
    for pins in ({"sha256": SHA256}, {"sha512": f"sha512:{SHA512}"}, {"sha256": SHA256.upper()}):
        assert fetch(server.url, dest, **pins) == dest
    proc = cli("fetch", server.url, str(dest), "--sha256", SHA256)
    assert proc.returncode == 0 and proc.stdout.strip() == str(dest), proc
    assert "already has the expected SHA-256; not downloaded" in proc.stderr
    assert len(server.log) == 1  # not one request more
    assert names(tmp_path) == ["disk.img"]


def test_dest_without_that_digest_is_downloaded(server: FaultServer, tmp_path: Path) -> None:
    dest = tmp_path / "disk.img"
    dest.write_bytes(DATA[:-1] + b"!")
    assert fetch(server.url, dest, sha256=SHA256).read_bytes() == DATA
    assert len(server.log) == 1
    # Without a digest nothing says the file is right: fetched again, as before.
    fetch(server.url, dest)
    assert len(server.log) == 2


# -- lock files ---------------------------------------------------------------------------------


def test_no_lock_file_left_after_a_fetch(server: FaultServer, tmp_path: Path) -> None:
    fetch(server.url, tmp_path / "ok.img", sha256=SHA256)
    assert names(tmp_path) == ["ok.img"]
    with pytest.raises(ChecksumMismatchError):
        fetch(server.url, tmp_path / "bad.img", sha256="0" * 64)
    server.schedule("404")
    with pytest.raises(DownloadError):
        fetch(server.url, tmp_path / "gone.img")
    server.schedule("short:1000", "500", "500")
    with pytest.raises(DownloadError):
        fetch(server.url, tmp_path / "cut.img", retries=1)
    assert names(tmp_path) == ["cut.img.part", "cut.img.part.meta", "ok.img"]
    proc = cli("fetch", server.url, str(tmp_path / "cli.img"), "-q")
    assert proc.returncode == 0
    assert names(tmp_path) == ["cli.img", "cut.img.part", "cut.img.part.meta", "ok.img"]


def test_no_lock_file_left_in_the_cache_after_ensure(server: FaultServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pyimagecache.ensure(server.url, cache, sha256=SHA256)
    assert not [n for n in names(cache) if n.endswith(".lock")], names(cache)


def test_a_lock_removed_by_its_holder_is_taken_afresh_by_its_waiter(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = FileLock(path)
    holder.acquire()
    told: List[object] = []
    waiter = FileLock(path, on_wait=told.append)
    import threading

    done = threading.Event()

    def wait() -> None:
        waiter.acquire()
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    while not told:
        pass
    assert told == [os.getpid()] and in_use(path)
    holder.release()  # unlinks the file the waiter locked
    assert done.wait(10)
    # The waiter holds the path's new file, not the removed one.
    assert path.exists() and in_use(path)
    assert FileLock(path).try_acquire() is False
    waiter.release()
    thread.join()
    assert not path.exists() and not in_use(path)


def test_prune_removes_lock_files_nobody_holds(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / "x-0123456789ab.raw.lock"
    stale.write_text("12345\n")  # a holder killed with SIGKILL
    held = cache / "y-0123456789ab.img.part.lock"
    holder = FileLock(held)
    holder.acquire()
    try:
        foreign = cache / "notes.lock"  # not a name the cache makes: left alone
        foreign.write_text("")
        proc = subprocess.run(
            [sys.executable, "-m", "pyimagecache", "cache", "prune", "--cache-dir", str(cache)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc
        assert f"removed {stale}" in proc.stdout
        assert names(cache) == ["notes.lock", "y-0123456789ab.img.part.lock"]
    finally:
        holder.release()
