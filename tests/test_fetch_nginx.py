"""Interop with a real server: a client SIGKILLed halfway resumes from nginx with one 206."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_tool
from nginx import serve_dir

from pyimagecache.download import fetch, hash_url

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
SIZE = 64 * MIB

CHILD = (
    "import sys; from pyimagecache import fetch; "
    "fetch(sys.argv[1], sys.argv[2], sha256=sys.argv[3])"
)

pytestmark = [pytest.mark.slow, pytest.mark.nginx]


def test_killed_client_resumes_with_a_206_for_the_rest(tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "disk.img").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "out" / "disk.img"
    dest.parent.mkdir()
    part = dest.with_name("disk.img.part")
    # Rate-limited so the kill lands mid-transfer whatever the machine's speed.
    with serve_dir(root, binary=nginx, extra="limit_rate 24m;") as server:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.url("disk.img"), str(dest), digest],
            cwd=REPO,
        )
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= SIZE // 2):
            assert child.poll() is None, "the download finished or failed before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        held = part.stat().st_size
        assert SIZE // 2 <= held < SIZE and not dest.exists()

        fetch(server.url("disk.img"), dest, sha256=digest)
        assert dest.read_bytes() == data
        first, second = server.access_log()
        assert first.status == 200 and first.range == ""
        assert second.status == 206
        assert second.range == f"bytes={held}-" and second.if_range.startswith('"')
        assert second.bytes == SIZE - held <= SIZE // 2 + MIB

        # The same digest streamed without a file.
        assert hash_url(server.url("disk.img"), ("sha256",)) == {"sha256": digest}
