"""Run a real nginx on 127.0.0.1 for interop tests and benchmarks.

    >>> with serve_dir(root) as server:          # doctest: +SKIP
    ...     fetch(server.url("disk.img"), dest)
    ...     [(e.status, e.range) for e in server.access_log()]
    [(200, '')]

nginx gets a config of its own in a temp directory (pid, logs and temp paths included), so
nothing system-wide is touched. The access log records, per request, the status, the Range and
If-Range headers and the body bytes sent, as JSON lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional

__all__ = ["LogEntry", "Nginx", "find_nginx", "serve_dir"]

_CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    log_format probe escape=json
        '{{"status":$status,"range":"$http_range","if_range":"$http_if_range",'
        '"bytes":$body_bytes_sent,"request":"$request"}}';
    access_log {work}/access.log probe;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {extra}
    }}
}}
"""


class LogEntry(NamedTuple):
    status: int
    range: str  # the request's Range header, "" when absent
    if_range: str
    bytes: int  # body bytes nginx sent
    request: str  # "GET /path HTTP/1.1"


def find_nginx() -> Optional[str]:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


class Nginx:
    """A running nginx serving ``root``; see :func:`serve_dir`."""

    def __init__(self, binary: str, root: Path, work: Path, extra: str = "") -> None:
        self.root = Path(root)
        self.work = Path(work)
        self.port = 0
        self._proc: Optional[subprocess.Popen[bytes]] = None
        for _ in range(5):  # the probed port can be taken before nginx binds it
            self.port = _free_port()
            self._write_config(extra)
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.work / "nginx.conf"), "-p", str(self.work)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_listening():
                return
            self.stop()
        raise RuntimeError(f"nginx did not start: {(self.work / 'error.log').read_text()}")

    def _write_config(self, extra: str) -> None:
        # As root, workers would switch to "nobody", who cannot read a private temp dir.
        user = "user root;" if os.geteuid() == 0 else ""
        (self.work / "nginx.conf").write_text(
            _CONFIG.format(user=user, work=self.work, root=self.root, port=self.port, extra=extra)
        )

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 10
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            time.sleep(0.02)
        return False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name.lstrip('/')}"

    def access_log(self) -> List[LogEntry]:
        path = self.work / "access.log"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text().splitlines():
            record = json.loads(line)
            entries.append(
                LogEntry(
                    int(record["status"]),
                    record["range"],
                    record["if_range"],
                    int(record["bytes"]),
                    record["request"],
                )
            )
        return entries

    def clear_log(self) -> None:
        """Start the access log afresh (nginx keeps appending to the same open file)."""
        path = self.work / "access.log"
        if path.exists():
            with open(path, "r+b") as f:
                f.truncate(0)

    def stop(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_dir(root: Path, *, binary: Optional[str] = None, extra: str = "") -> Iterator[Nginx]:
    """Serve the files under ``root`` over http://127.0.0.1:<port>/ for the ``with`` block.

    ``extra`` is pasted into the server block (e.g. ``"limit_rate 10m;"``).
    """
    binary = binary or find_nginx()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    with tempfile.TemporaryDirectory(prefix="nginx-") as work:
        server = Nginx(binary, Path(root).resolve(), Path(work), extra)
        try:
            yield server
        finally:
            server.stop()
