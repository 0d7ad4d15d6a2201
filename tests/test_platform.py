"""What macOS changes, checked on Linux: the Linux-only calls hidden (``--hide-linux-calls``,
tests/hidecalls/) and, the other way round, macOS's ``F_FULLFSYNC`` injected into ``fcntl``.

Durability is checked by identity: every flush is recorded by the (device, inode) of what it
flushed, and a published file keeps the inode of the temporary it was renamed from.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
from conftest import HIDECALLS_DIR, linux_calls_hidden
from hidecalls.linux_calls import FCNTL_NAMES, OS_NAMES, visible
from qcow2writer import Compressed, Data, Qcow2Writer, Zero

import pyimagecache
from pyimagecache import _atomic, _sparse
from pyimagecache.cli import main
from pyimagecache.diskcopy import CopyStrategy, copy_disk

Identity = Tuple[int, int]
MiB = 1 << 20
#: No Linux fcntl command has this number, so a call the fake misses fails loudly (EINVAL).
FAKE_F_FULLFSYNC = 0x7A51


def identity(path: Path) -> Identity:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def qcow2_image(path: Path, clusters: int = 24) -> bytes:
    """A small qcow2 with data, compressed and zero clusters; returns its raw disk."""
    cs = 1 << 16
    w = Qcow2Writer(clusters * cs)
    for c in range(clusters):
        if c % 3 == 0:
            w[c] = Data(bytes([c + 1]) * cs)
        elif c % 3 == 1:
            w[c] = Compressed(b"platform " * 4000)
        else:
            w[c] = Zero()
    built = w.build()
    built.save(path)
    return built.expected()


# -- the hiding mechanism ---------------------------------------------------------------------


def child_visible(env: Dict[str, str]) -> List[str]:
    """The names of linux_calls' lists a fresh Python child with ``env`` still has."""
    code = (
        "import fcntl, json, os, sys\n"
        "names = json.loads(sys.argv[1])\n"
        "print(json.dumps([m + '.' + n for m, ns in names.items() for n in ns\n"
        "                  if hasattr({'os': os, 'fcntl': fcntl}[m], n)]))\n"
        "if hasattr(os, 'process_cpu_count'):\n"
        "    assert os.process_cpu_count() >= 1\n"
    )
    names = json.dumps({"os": OS_NAMES, "fcntl": FCNTL_NAMES})
    proc = subprocess.run(
        [sys.executable, "-c", code, names],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: List[str] = json.loads(proc.stdout)
    return found


def test_sitecustomize_hides_the_linux_calls_in_a_child() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(HIDECALLS_DIR)
    assert child_visible(env) == []
    if sys.platform == "linux":  # the lists name calls this Linux has
        env.pop("PYTHONPATH")
        assert {"os.posix_fadvise", "os.POSIX_FADV_DONTNEED"} <= set(child_visible(env))


def test_hidden_run_hides_here_and_in_every_child(request: pytest.FixtureRequest) -> None:
    if not linux_calls_hidden(request.config):
        pytest.skip("only with --hide-linux-calls")
    assert visible() == []
    assert not hasattr(os, "copy_file_range") and not hasattr(os, "posix_fadvise")
    # A child started the way the other tests start theirs (os.environ) is hidden too.
    assert child_visible(dict(os.environ)) == []


def test_copy_file_range_is_looked_up_when_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A strategy chosen while the call existed still copies once it is gone (the read
    # fallback), so hiding it after import reaches the fallback too.
    monkeypatch.setattr(os, "copy_file_range", lambda *a: 0, raising=False)
    strategy = CopyStrategy(methods=("copy_file_range", "read"))
    monkeypatch.delattr(os, "copy_file_range")
    src = tmp_path / "s.raw"
    data = os.urandom(MiB) + bytes(3 * MiB) + os.urandom(4096)
    src.write_bytes(data)
    assert copy_disk(src, tmp_path / "d.raw", strategy=strategy).read_bytes() == data
    with pytest.raises(ValueError, match="not available on this platform"):
        CopyStrategy(methods=("copy_file_range", "read"))


def test_default_copy_strategy_matches_the_platform(request: pytest.FixtureRequest) -> None:
    from pyimagecache.diskcopy import DEFAULT_STRATEGY

    has = hasattr(os, "copy_file_range")
    assert DEFAULT_STRATEGY.methods == (("copy_file_range", "read") if has else ("read",))
    if linux_calls_hidden(request.config):
        assert DEFAULT_STRATEGY.methods == ("read",)


def test_writeback_advice_needs_both_the_call_and_the_constant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advised: List[Tuple[int, int, int]] = []
    monkeypatch.setattr(
        os, "posix_fadvise", lambda fd, off, n, adv: advised.append((off, n, adv)), raising=False
    )
    monkeypatch.setattr(os, "POSIX_FADV_DONTNEED", 4, raising=False)
    with open(tmp_path / "f", "wb") as f:
        _sparse.start_writeback(f.fileno(), 8, 16)
        assert advised == [(8, 16, 4)]
        monkeypatch.delattr(os, "POSIX_FADV_DONTNEED")
        _sparse.start_writeback(f.fileno())  # macOS: neither exists; no call, no error
        monkeypatch.delattr(os, "posix_fadvise")
        _sparse.start_writeback(f.fileno())
    assert advised == [(8, 16, 4)]


def test_durable_convert_without_writeback_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache converts with sync=True, which paces writeback with posix_fadvise where it
    # exists; without it (macOS) the same bytes come out.
    monkeypatch.delattr(os, "posix_fadvise", raising=False)
    monkeypatch.delattr(os, "POSIX_FADV_DONTNEED", raising=False)
    monkeypatch.setattr(_sparse, "WRITEBACK_BYTES", 1 << 16)
    src = tmp_path / "s.qcow2"
    expected = qcow2_image(src)
    out = pyimagecache.convert(src, tmp_path / "o.raw", sync=True)
    assert out.read_bytes() == expected


def test_default_cache_dir_on_macos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyimagecache.cachedir import default_cache_dir

    monkeypatch.delenv("PYIMAGECACHE_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # a Linux convention only
    assert default_cache_dir() == tmp_path / "xdg" / "pyimagecache"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_cache_dir() == tmp_path / "Library" / "Caches" / "pyimagecache"


# -- F_FULLFSYNC, injected --------------------------------------------------------------------


class Flushes:
    """What was flushed, by identity: ``full`` with F_FULLFSYNC, ``plain`` with os.fsync."""

    def __init__(self) -> None:
        self.full: Set[Identity] = set()
        self.plain: Set[Identity] = set()
        self.refuse = False  # F_FULLFSYNC fails, as on some network filesystems


@pytest.fixture
def flushes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flushes]:
    """macOS's F_FULLFSYNC injected into fcntl (hiding inverted), every flush recorded."""
    seen = Flushes()
    real_fcntl = fcntl.fcntl
    real_fsync = os.fsync

    def fake_fcntl(fd: int, cmd: int, arg: Any = 0) -> Any:
        if cmd != FAKE_F_FULLFSYNC:
            return real_fcntl(fd, cmd, arg)
        st = os.fstat(fd)
        seen.full.add((st.st_dev, st.st_ino))
        if seen.refuse:
            raise OSError(errno.ENOTSUP, "F_FULLFSYNC not supported here")
        real_fsync(fd)
        return 0

    def spy_fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.plain.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(fcntl, "F_FULLFSYNC", FAKE_F_FULLFSYNC, raising=False)
    monkeypatch.setattr(fcntl, "fcntl", fake_fcntl)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    yield seen


def check_flushed(seen: Flushes, *paths: Path) -> None:
    """Each path (file or directory) was flushed with F_FULLFSYNC, and with fsync only when
    F_FULLFSYNC was refused."""
    for path in paths:
        ident = identity(path)
        assert ident in seen.full, f"{path} was not flushed with F_FULLFSYNC"
        if seen.refuse:
            assert ident in seen.plain, f"{path}: F_FULLFSYNC refused, and no fsync after it"
        else:
            assert ident not in seen.plain, f"{path}: fsync although F_FULLFSYNC worked"


@pytest.mark.parametrize("refuse", [False, True], ids=["full", "refused"])
def test_sync_fd(tmp_path: Path, flushes: Flushes, refuse: bool) -> None:
    flushes.refuse = refuse
    path = tmp_path / "f"
    path.write_bytes(b"x")
    _atomic.fsync_path(path)
    _atomic.fsync_dir(tmp_path)
    check_flushed(flushes, path, tmp_path)


def test_plain_fsync_without_f_fullfsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Linux (and a hidden run): no F_FULLFSYNC, so fcntl is never asked; fsync does it.
    monkeypatch.delattr(fcntl, "F_FULLFSYNC", raising=False)
    asked: List[int] = []
    synced: List[int] = []
    real_fcntl, real_fsync = fcntl.fcntl, os.fsync

    def spy_fcntl(fd: int, cmd: int, arg: Any = 0) -> Any:
        asked.append(cmd)
        return real_fcntl(fd, cmd, arg)

    def spy_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(fcntl, "fcntl", spy_fcntl)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    with open(tmp_path / "f", "wb") as f:
        _atomic.sync_fd(f.fileno())
        assert synced == [f.fileno()]
    assert asked == []


@pytest.mark.parametrize("refuse", [False, True], ids=["full", "refused"])
def test_ensure_publishes_with_full_fsync(tmp_path: Path, flushes: Flushes, refuse: bool) -> None:
    flushes.refuse = refuse
    src = tmp_path / "disk.qcow2"
    expected = qcow2_image(src)
    cache = tmp_path / "cache"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    raw = pyimagecache.ensure(src.as_uri(), cache, sha256=digest, keep_source=True)
    assert raw.read_bytes() == expected
    sidecar = raw.with_name(raw.name + ".json")
    sources = [p for p in cache.iterdir() if p.suffix == ".qcow2"]
    assert len(sources) == 1 and sidecar.exists()
    # The disk, its sidecar, the verified download kept beside them and the renames of all
    # three in the cache directory.
    check_flushed(flushes, raw, sidecar, sources[0], cache)


@pytest.mark.parametrize("command", ["convert", "copy"])
def test_cli_sync_uses_full_fsync_only_when_asked(
    tmp_path: Path, flushes: Flushes, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    src = tmp_path / "in.qcow2"
    expected = qcow2_image(src)
    if command == "copy":
        src = tmp_path / "in.raw"
        src.write_bytes(expected)
    out = tmp_path / "out"
    out.mkdir()
    assert main([command, str(src), str(out / "lazy.raw")]) in (0, None)
    assert (out / "lazy.raw").read_bytes() == expected
    assert flushes.full == set() and flushes.plain == set()  # like cp, not flushed
    assert main([command, str(src), str(out / "durable.raw"), "--sync"]) in (0, None)
    assert (out / "durable.raw").read_bytes() == expected
    check_flushed(flushes, out / "durable.raw", out)
    capsys.readouterr()


def test_fetch_publishes_with_full_fsync(tmp_path: Path, flushes: Flushes) -> None:
    src = tmp_path / "blob"
    src.write_bytes(os.urandom(3 * MiB))
    dest_dir = tmp_path / "downloads"
    dest_dir.mkdir()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = pyimagecache.fetch(src.as_uri(), dest_dir / "blob", sha256=digest)
    assert dest.read_bytes() == src.read_bytes()
    check_flushed(flushes, dest, dest_dir)
