"""A threaded HTTP(S) server on 127.0.0.1 that serves one file and misbehaves on request.

    >>> with FaultServer(data) as server:                      # doctest: +SKIP
    ...     server.schedule("drop:1000", "503:1", "ok")
    ...     fetch(server.url, dest)
    ...     [r.status for r in server.log]
    [200, 503, 206]

Each GET of ``/file`` (any query string) takes the next fault from the schedule; once it is
empty, requests are served correctly (Range, If-Range, 416 as nginx does). Faults, written
"name" or "name:arg":

=================  ============================================================================
ok                 serve correctly
drop:N             send the headers and N body bytes, then reset the connection
short:N            announce the full length, send N body bytes, close cleanly
stall:S            send the headers and half the body, then wait S seconds before the rest
ignore_range       answer 200 with the whole file whatever the Range
bad_start          answer a Range request with 206 whose Content-Range starts 1 byte later
bad_total          answer a Range request with 206 whose Content-Range total is 1 larger
new_etag           the file is re-published upstream (same bytes, new ETag and Last-Modified)
replace            the file is replaced upstream by its bytes reversed (new validators too)
416                answer 416 whatever the request
503:S / 429:S      that status with Retry-After: S
500 / 404 / 403    that status, no Retry-After
redirect           302 to /file?r=<n> (served normally, next fault)
redirect_loop      302 to /loop/a, which redirects to /loop/b, which redirects to /loop/a
downgrade          302 to the same path over plain http:// on ``downgrade_port``
weak_etag          serve correctly but with a weak ETag and no Last-Modified
=================  ============================================================================

``log`` records every request (path, Range, If-Range, status, body bytes sent). The server also
accepts absolute-form request targets, so it can stand in for an HTTP proxy (``proxied`` tells).
"""

from __future__ import annotations

import email.utils
import http.server
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["FaultServer", "Request", "FAULTS", "make_cert"]

FAULTS = (
    "ok",
    "drop",
    "short",
    "stall",
    "ignore_range",
    "bad_start",
    "bad_total",
    "new_etag",
    "replace",
    "416",
    "503",
    "429",
    "500",
    "404",
    "403",
    "redirect",
    "redirect_loop",
    "downgrade",
    "weak_etag",
)
_CHUNK = 64 << 10


class Request(NamedTuple):
    path: str  # path and query of the request target
    range: str  # "" when absent
    if_range: str
    status: int
    sent: int  # body bytes written
    proxied: bool  # the target was in absolute form (we were used as a proxy)
    accept_encoding: str  # "" when absent


class FaultServer:
    """Serves ``data`` at ``/file``; see the module docstring for the faults."""

    def __init__(
        self,
        data: bytes,
        *,
        tls: Optional[Tuple[Path, Path]] = None,
        rate: Optional[float] = None,
        last_modified: bool = True,
        etag: bool = True,
        weak_etag: bool = False,
        content_encoding: Optional[str] = None,
    ) -> None:
        self.data = data
        self.rate = rate  # bytes per second, None for as fast as possible
        self.use_last_modified = last_modified
        self.use_etag = etag
        self.weak_etag = weak_etag
        self.content_encoding = content_encoding  # sent as is; the body is never encoded
        self.downgrade_port = 1
        #: Where the file is served (a test may move it, e.g. to a mirror's BASE/HOST/PATH).
        self.path = "/file"
        self._log: List[Optional[Request]] = []
        self._faults: List[str] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._busy = 0
        self._version = 0
        self._redirects = 0
        self._publish()
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fault_server = self  # type: ignore[attr-defined]
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- control -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.path}"

    @property
    def log(self) -> List[Request]:
        """Every request so far, once the requests in progress have been answered (a client
        may have read a whole response before its handler got to record it)."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=5)
            return [r for r in self._log if r is not None]

    def clear_log(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=5)
            self._log.clear()

    def schedule(self, *faults: str) -> None:
        """Queue faults for the next requests of /file, in order."""
        for fault in faults:
            if fault.split(":")[0] not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._faults.extend(faults)

    def replace(self, data: bytes) -> None:
        """The file is replaced upstream: new bytes, new validators."""
        with self._lock:
            self.data = data
            self._publish()

    def full_downloads(self) -> int:
        """Responses that sent the whole file from byte 0."""
        return sum(1 for r in self.log if r.status == 200 and r.sent == len(self.data))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _publish(self) -> None:
        self._version += 1
        self.etag = f'"v{self._version}-{len(self.data)}"'
        # One second apart per version, so Last-Modified changes too.
        self.last_modified = email.utils.formatdate(1_600_000_000 + self._version, usegmt=True)

    def _next_fault(self) -> Tuple[str, str]:
        with self._lock:
            fault = self._faults.pop(0) if self._faults else "ok"
        name, _, arg = fault.partition(":")
        return name, arg


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-response are the point of this server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultserver"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    @property
    def fs(self) -> FaultServer:
        return self.server.fault_server  # type: ignore[attr-defined,no-any-return]

    def _record(self, status: int, sent: int) -> None:
        target = self.path
        proxied = "://" in target
        if proxied:
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.fs._log[self._slot] = Request(
            target,
            self.headers.get("Range", ""),
            self.headers.get("If-Range", ""),
            status,
            sent,
            proxied,
            self.headers.get("Accept-Encoding", ""),
        )

    def _plain(self, status: int, headers: Tuple[Tuple[str, str], ...] = ()) -> None:
        body = f"{status}\n".encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._record(status, 0)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        with self.fs._idle:
            self.fs._busy += 1
            self._slot = len(self.fs._log)  # requests are logged in the order they arrived
            self.fs._log.append(None)
        try:
            self._get()
        finally:
            with self.fs._idle:
                self.fs._busy -= 1
                self.fs._idle.notify_all()

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path == "/loop/a":
            return self._plain(302, (("Location", "/loop/b"),))
        if path == "/loop/b":
            return self._plain(302, (("Location", "/loop/a"),))
        if path != self.fs.path:
            return self._plain(404)
        name, arg = self.fs._next_fault()
        fs = self.fs
        if name in ("503", "429", "500", "404", "403"):
            extra = (("Retry-After", arg),) if arg else ()
            return self._plain(int(name), extra)
        if name == "416":
            return self._plain(416, (("Content-Range", f"bytes */{len(fs.data)}"),))
        if name == "redirect":
            fs._redirects += 1
            return self._plain(302, (("Location", f"/file?r={fs._redirects}"),))
        if name == "redirect_loop":
            return self._plain(302, (("Location", "/loop/a"),))
        if name == "downgrade":
            return self._plain(302, (("Location", f"http://127.0.0.1:{fs.downgrade_port}/file"),))
        if name == "new_etag":
            fs.replace(fs.data)
        elif name == "replace":
            fs.replace(fs.data[::-1])
        self._serve(name, arg)

    def _serve(self, fault: str, arg: str) -> None:
        fs = self.fs
        data = fs.data
        total = len(data)
        etag = fs.etag if fs.use_etag else None
        modified = fs.last_modified if fs.use_last_modified else None
        if fault == "weak_etag" or fs.weak_etag:
            etag, modified = f"W/{fs.etag}", None
        start, status = 0, 200
        wanted = _parse_range(self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        honour = wanted is not None and fault != "ignore_range"
        if honour and if_range is not None:
            honour = if_range in (fs.etag if fs.use_etag else None, modified)
        if honour and wanted is not None:
            if wanted >= total:
                return self._plain(416, (("Content-Range", f"bytes */{total}"),))
            start, status = wanted, 206
        content_range = f"bytes {start}-{total - 1}/{total}"
        if status == 206 and fault == "bad_start":
            content_range = f"bytes {start + 1}-{total - 1}/{total}"
        elif status == 206 and fault == "bad_total":
            content_range = f"bytes {start}-{total - 1}/{total + 1}"
        body = memoryview(data)[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", content_range)
        if etag:
            self.send_header("ETag", etag)
        if modified:
            self.send_header("Last-Modified", modified)
        if fs.content_encoding:
            self.send_header("Content-Encoding", fs.content_encoding)
        self.end_headers()
        limit = len(body)
        if fault in ("drop", "short"):
            limit = min(int(arg or 0), len(body))
        self._sent = 0
        try:
            self._send(body[:limit], stall=float(arg) if fault == "stall" else 0.0)
        except OSError:
            pass  # the client went away (a timeout on its side)
        self._record(status, self._sent)
        if fault == "drop":
            # Reset, but only once the client has had time to read what was sent: a reset
            # discards data still unread in the receiver's socket buffer.
            time.sleep(0.1)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if fault in ("drop", "short", "stall"):
            self.close_connection = True

    def _send(self, body: memoryview, stall: float) -> None:
        sent = 0
        half = len(body) // 2
        rate = self.fs.rate
        started = time.monotonic()
        while sent < len(body):
            if stall and sent >= half:
                self.wfile.flush()
                time.sleep(stall)
                stall = 0.0
            end = min(sent + _CHUNK, len(body), half if stall and sent < half else len(body))
            self.wfile.write(body[sent:end])
            sent = self._sent = end
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        self.wfile.flush()


_RANGE = re.compile(r"bytes=(\d+)-")


def _parse_range(value: str) -> Optional[int]:
    match = _RANGE.fullmatch(value.strip())
    return int(match.group(1)) if match else None


def make_cert(directory: Path) -> Tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with the openssl tool."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
