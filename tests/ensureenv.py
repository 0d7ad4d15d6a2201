"""A local image server, a catalog describing what it serves, and a cache: what the ensure
tests (ordinary, hostile and careless) share. Fixtures ``server`` and ``env`` are imported by
the test modules that use them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from conftest import require_tool

import pyimagecache

MiB = 1 << 20


class ImageServer:
    """127.0.0.1 HTTP server for image files: strong ETags, If-Range resumes, a request log,
    and an optional rate limit so that a test can kill a client mid-download."""

    def __init__(self, root: Path, rate: Optional[int] = None) -> None:
        self.root = root
        self.rate = rate  # bytes per second, None for unlimited
        self.requests: List[Tuple[str, Optional[str]]] = []  # (path, Range header)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append((self.path, self.headers.get("Range")))
                path = server.root / self.path.lstrip("/").split("?")[0]
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                start = 0
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if rng and rng.startswith("bytes=") and if_range in (None, etag):
                    start = int(rng[6:].split("-")[0])
                if 0 < start < len(data):
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    start = 0
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                view = memoryview(data)[start:]
                step = 64 * 1024
                try:
                    for pos in range(0, len(view), step):
                        self.wfile.write(view[pos : pos + step])
                        if server.rate:
                            time.sleep(step / server.rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def gets(self, name: str) -> List[Optional[str]]:
        with self.lock:
            return [r for p, r in self.requests if p.lstrip("/").split("?")[0] == name]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def disk_image(size: int = 4 * MiB, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(size)
    buf[0:512] = b"\xeb\x63\x90" + rng.randbytes(509)  # an MBR-ish first sector, not magic
    buf[MiB : MiB + 100_000] = rng.randbytes(100_000)
    buf[size - 4096 :] = rng.randbytes(4096)
    return bytes(buf)


def tar_members(members: List[Tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar archive of regular files ``(name, data)``, in that order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_of(name: str, data: bytes, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar archive of one regular file."""
    return tar_members([(name, data)], fmt)


def qcow2_of(tmp: Path, data: bytes) -> bytes:
    qemu_img = require_tool("qemu-img")
    raw, q = tmp / "q-src.raw", tmp / "q-src.qcow2"
    raw.write_bytes(data)
    subprocess.run(
        [qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-c", str(raw), str(q)], check=True
    )
    out = q.read_bytes()
    raw.unlink()
    q.unlink()
    return out


class Env:
    """A served directory, a catalog describing it, and a cache directory."""

    def __init__(self, tmp: Path, server: ImageServer) -> None:
        self.tmp = tmp
        self.server = server
        self.www = server.root
        self.cache = tmp / "cache"
        self.catalog_path = tmp / "catalog.json"
        self.catalog: Dict[str, Any] = {}

    def publish(
        self,
        alias: str,
        filename: str,
        data: bytes,
        *,
        snapshot: str = "20260601-1",
        sha256: Optional[str] = None,
        arches: Tuple[str, ...] = ("amd64", "arm64"),
    ) -> str:
        (self.www / filename).write_bytes(data)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        url = f"{self.server.base}/{filename}"
        self.catalog[alias] = {
            "distro": "test",
            "version": "1",
            "snapshot": snapshot,
            "bumped_at": "2026-06-10",
            "arch": {a: {"url": url, "sha256": digest} for a in arches},
        }
        self.catalog_path.write_text(json.dumps(self.catalog))
        os.utime(self.catalog_path, ns=(time.time_ns(), time.time_ns()))
        return url

    def ensure(self, image: str, **kw: Any) -> Path:
        kw.setdefault("catalog", self.catalog_path)
        kw.setdefault("arch", "amd64")
        return pyimagecache.ensure(image, self.cache, **kw)

    def files(self) -> List[str]:
        """The cache's files except lock files (ours and the download's stay, by design)."""
        if not self.cache.exists():
            return []
        return sorted(p.name for p in self.cache.iterdir() if not p.name.endswith(".lock"))

    def leftovers(self) -> List[str]:
        """Partial downloads and temporaries."""
        return [n for n in self.files() if n.startswith(".") or ".part" in n]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ImageServer]:
    www = tmp_path / "www"
    www.mkdir()
    srv = ImageServer(www)
    yield srv
    srv.close()


@pytest.fixture
def env(tmp_path: Path, server: ImageServer) -> Env:
    return Env(tmp_path, server)


def tamper(raw: Path, *, keep_mtime: bool = False) -> None:
    """Write into a cached (read-only) raw as a guest would, optionally setting its
    modification time back to what it was."""
    st = raw.stat()
    os.chmod(raw, 0o644)
    with open(raw, "r+b") as f:
        f.seek(MiB + 10)
        f.write(b"written by a guest")
    os.chmod(raw, 0o444)
    if keep_mtime:
        os.utime(raw, ns=(st.st_atime_ns, st.st_mtime_ns))
