"""fetch on the local side: file:// sources, disk errors, kills, concurrent processes, the CLI."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pty
import random
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
from faultserver import FaultServer

from pyimagecache import download
from pyimagecache.errors import ChecksumMismatchError, DownloadError
from pyimagecache.settings import Retry, Settings

# Backoff in milliseconds, passed down as settings (no module globals to patch).
FAST = Settings(retry=Retry(backoff_base=0.001, backoff_max=0.005))
fetch = functools.partial(download.fetch, settings=FAST)
hash_url = functools.partial(download.hash_url, settings=FAST)
read_url = functools.partial(download.read_url, settings=FAST)

REPO = Path(__file__).resolve().parent.parent
SIZE = 400_000


@pytest.fixture
def data() -> bytes:
    return random.Random(7).randbytes(SIZE)


@pytest.fixture
def server(data: bytes) -> Iterator[FaultServer]:
    with FaultServer(data) as srv:
        yield srv


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_child(
    code: str, *args: str, timeout: float = 60, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet with the package importable; sys.argv[1:] are ``args``."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        **kwargs,
    )


# -- file:// and paths ---------------------------------------------------------------------------


def test_file_url_and_path(data: bytes, tmp_path: Path) -> None:
    src = tmp_path / "mirror dir" / "disk.img"
    src.parent.mkdir()
    src.write_bytes(data)
    calls = []
    record = calls.append
    a = fetch(src.as_uri(), tmp_path / "a.img", sha256=sha(data), progress=lambda *c: record(c))
    b = fetch(src, tmp_path / "b.img", sha256=sha(data))
    c = fetch(str(src), tmp_path / "c.img")
    assert a.read_bytes() == b.read_bytes() == c.read_bytes() == data
    assert calls[-1] == (SIZE, SIZE)
    assert read_url(src.as_uri()).data == data
    assert hash_url(str(src), ("sha256", "md5"))["md5"] == hashlib.md5(data).hexdigest()
    with pytest.raises(ChecksumMismatchError):
        fetch(src, tmp_path / "d.img", sha256="f" * 64)
    assert not (tmp_path / "d.img").exists() and not (tmp_path / "d.img.part").exists()


def test_missing_source_names_it(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot read .*nope.img: No such file") as info:
        fetch(tmp_path / "nope.img", tmp_path / "a.img")
    assert info.value.path == str(tmp_path / "nope.img")
    assert list(tmp_path.iterdir()) == []  # not even the lock file
    with pytest.raises(DownloadError, match="remote host"):
        fetch("file://server/share/disk.img", tmp_path / "a.img")


# -- where the file should go -------------------------------------------------------------------


def test_directory_in_the_way(server: FaultServer, tmp_path: Path) -> None:
    (tmp_path / "disk.img").mkdir()
    with pytest.raises(DownloadError, match="is a directory") as info:
        fetch(server.url, tmp_path / "disk.img")
    assert info.value.path == str(tmp_path / "disk.img")
    (tmp_path / "b.img.part").mkdir()
    with pytest.raises(DownloadError, match="cannot create .*b.img.part: Is a directory"):
        fetch(server.url, tmp_path / "b.img")
    with pytest.raises(DownloadError, match="does not exist"):
        fetch(server.url, tmp_path / "missing" / "c.img")
    assert server.log == []


def test_disk_full_keeps_the_partial_and_resumes(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    limit = 150_000

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    child = run_child(
        """
        import json, sys
        from pyimagecache.download import fetch
        from pyimagecache.errors import DownloadError
        try:
            fetch(sys.argv[1], sys.argv[2])
        except DownloadError as e:
            print(json.dumps({"msg": str(e), "path": e.path, "done": e.done}))
        """,
        server.url,
        str(dest),
        preexec_fn=limit_file_size,
    )
    assert child.returncode == 0, child.stderr
    err = json.loads(child.stdout)
    assert err["path"] == str(dest) + ".part"
    assert "File too large" in err["msg"] and "next call resumes" in err["msg"]
    part = Path(err["path"])
    assert part.read_bytes() == data[: err["done"]] and 0 < err["done"] <= limit
    assert not dest.exists()
    fetch(server.url, dest, sha256=sha(data))
    assert dest.read_bytes() == data
    assert server.log[-1].range == f"bytes={err['done']}-"


def test_permission_denied_names_the_path(data: bytes) -> None:
    # tmp_path is private to root; this one must be reachable by an unprivileged user.
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        src = Path(top, "src.img")
        src.write_bytes(data)
        src.chmod(0o644)
        locked = Path(top, "locked")
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        child = run_child(
            """
            import os, sys
            from pyimagecache.download import fetch
            from pyimagecache.errors import DownloadError
            if os.geteuid() == 0:
                os.setuid(65534)  # root may write anywhere
            try:
                fetch(sys.argv[1], sys.argv[2])
            except DownloadError as e:
                print(e.path); print(e)
            """,
            str(src),
            str(locked / "disk.img"),
        )
        assert child.returncode == 0, child.stderr
        path, message = child.stdout.splitlines()
        assert path == str(locked / "disk.img.part.lock")
        assert "Permission denied" in message
        assert os.listdir(locked) == []


# -- kills -------------------------------------------------------------------------------------


def test_kill_between_last_write_and_rename(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    code = """
        import os, signal, sys
        real_replace = os.replace
        def replace(src, dst):
            if str(src).endswith(".part"):  # publishing the download, not the sidecar
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
        os.replace = replace
        from pyimagecache.download import fetch
        fetch(sys.argv[1], sys.argv[2], sha256=sys.argv[3])
        """
    child = run_child(code, server.url, str(dest), sha(data))
    assert child.returncode == -signal.SIGKILL
    part = tmp_path / "disk.img.part"
    assert not dest.exists() and part.read_bytes() == data
    # A torn last write: the complete-looking partial must not pass as final.
    with open(part, "r+b") as f:
        f.seek(SIZE - 1)
        f.write(bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumMismatchError):
        fetch(server.url, dest, sha256=sha(data))
    assert not dest.exists() and not part.exists()
    # Killed again after a good download: the next call checks the partial without fetching it.
    child = run_child(code, server.url, str(dest), sha(data))
    assert child.returncode == -signal.SIGKILL
    server.clear_log()
    fetch(server.url, dest, sha256=sha(data))
    assert dest.read_bytes() == data
    assert [(r.status, r.range, r.sent) for r in server.log] == [(416, f"bytes={SIZE}-", 0)]


@pytest.mark.slow
def test_eight_processes_one_download(data: bytes, tmp_path: Path) -> None:
    dest = tmp_path / "disk.img"
    code = """
        import hashlib, sys
        from pyimagecache.download import fetch
        path = fetch(sys.argv[1], sys.argv[2], sha256=sys.argv[3])
        print(hashlib.sha256(path.read_bytes()).hexdigest())
        """
    # Slow enough that all eight start while the first is still downloading.
    with FaultServer(data, rate=SIZE / 3.0) as srv:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(code), srv.url, str(dest), sha(data)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for _ in range(8)
        ]
        outputs = [child.communicate(timeout=60) for child in children]
        assert [c.returncode for c in children] == [0] * 8, outputs
        assert [out.strip() for out, _ in outputs] == [sha(data)] * 8
        assert len(srv.log) == 1 and srv.full_downloads() == 1
    assert dest.read_bytes() == data


def test_waiter_returns_what_the_lock_holder_published(
    server: FaultServer, data: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyimagecache._lock import FileLock
    from pyimagecache.download import to_file

    waiting = threading.Event()

    class ObservedLock(FileLock):
        def acquire(self) -> None:
            waiting.set()  # fetch has looked at dest and is about to wait
            super().acquire()

    monkeypatch.setattr(to_file, "FileLock", ObservedLock)
    dest = tmp_path / "disk.img"
    holder = FileLock(tmp_path / "disk.img.part.lock")

    def wait_while(publish: Callable[[], None]) -> Optional[Path]:
        result: List[Path] = []
        holder.acquire()
        waiting.clear()
        waiter = threading.Thread(
            target=lambda: result.append(fetch(server.url, dest, sha256=sha(data)))
        )
        waiter.start()
        assert waiting.wait(10)
        time.sleep(0.05)
        publish()
        holder.release()
        waiter.join(10)
        return result[0] if result else None

    assert wait_while(lambda: dest.write_bytes(data)) == dest
    assert server.log == []
    # Published but wrong: the waiter downloads after all.
    os.unlink(dest)
    assert wait_while(lambda: dest.write_bytes(b"bad")) == dest
    assert dest.read_bytes() == data and len(server.log) == 1


# -- the package and the CLI -------------------------------------------------------------------


def test_import_does_not_load_urllib3(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    child = run_child(
        """
        import sys, pyimagecache
        assert "urllib3" not in sys.modules
        pyimagecache.fetch(sys.argv[1], sys.argv[1] + ".copy")
        assert "urllib3" not in sys.modules, "a local copy needs no urllib3"
        """,
        str(src),
    )
    assert child.returncode == 0, child.stderr


def test_cli_fetch(server: FaultServer, data: bytes, tmp_path: Path) -> None:
    dest = tmp_path / "disk.img"
    ok = run_child(
        "from pyimagecache.cli import main; raise SystemExit(main())",
        "fetch",
        server.url,
        str(dest),
        "--sha256",
        sha(data),
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(dest) and dest.read_bytes() == data
    bad = run_child(
        "from pyimagecache.cli import main; raise SystemExit(main())",
        "fetch",
        server.url,
        str(tmp_path / "b.img"),
        "--sha256",
        "0" * 64,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("pyimagecache: error: SHA-256 mismatch for " + server.url)
    assert len(bad.stderr.strip().splitlines()) == 1


def test_cli_progress_bar_on_a_terminal(data: bytes, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    with FaultServer(data, rate=SIZE / 1.0) as srv:
        child = subprocess.Popen(
            [sys.executable, "-m", "pyimagecache", "fetch", srv.url, str(tmp_path / "d.img")],
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=REPO,
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        child.wait(30)
        os.close(master)
    assert child.returncode == 0
    text = seen.decode()
    assert "d.img" in text and "/s" in text and "ETA" in text and "%" in text
