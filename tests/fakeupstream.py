"""A fake cloud.debian.org + cloud-images.ubuntu.com for the catalog refresher's tests.

    >>> with FakeUpstream() as fake:                               # doctest: +SKIP
    ...     fake.add_debian("12", "bookworm", "20260601-2496")
    ...     fake.add_ubuntu("24.04", "noble", "release-20260518")
    ...     refresh_catalog(path, debian_root=fake.debian_root, ubuntu_root=fake.ubuntu_root)
    ...     fake.image_bytes_sent()
    0

A threaded http.server on 127.0.0.1 (ephemeral port) serving a virtual tree shaped like the real
servers: Apache-style HTML indexes (a table for Debian, a <pre> listing for Ubuntu), ``latest/``
and ``daily/`` beside Debian's dated snapshots, ``current/`` and ``release/`` beside Ubuntu's,
``/ubuntu/<version>/`` redirecting to ``/ubuntu/<codename>/``, SHA512SUMS (``<hex>  <file>``) and
SHA256SUMS (``<hex> *<file>``), small generated images, single Range requests. Every request
is logged with the body bytes actually sent, and switches inject the faults the refresher must
survive: a missing file or sums line, a wrong checksum, a malformed listing, a dead server.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

ARCHES = ("amd64", "arm64")
IMAGE_SUFFIXES = (".raw", ".img")
#: Signs a sums file: data -> detached signature.
Signer = Callable[[bytes], bytes]


class Request(NamedTuple):
    method: str
    path: str
    status: int
    sent: int  # body bytes written to the socket


def make_image(path: str, size: int) -> bytes:
    """Deterministic, distinct content per path: random ends around a zero run (like a disk)."""
    rng = random.Random(path)
    if size < 8192:
        return rng.randbytes(size)
    return rng.randbytes(4096) + bytes(size - 8192) + rng.randbytes(4096)


class FakeUpstream:
    """Start with ``with FakeUpstream() as fake:`` (or start()/stop())."""

    def __init__(self, image_size: int = 64 * 1024) -> None:
        self.image_size = image_size
        self.files: Dict[str, bytes] = {}
        self.redirects: Dict[str, str] = {}
        self.broken_listings: Dict[str, bytes] = {}
        self.requests: List[Request] = []
        self.signer: Optional[Signer] = None
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        fake = self

        class Handler(_Handler):
            upstream = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down; afterwards connections to the port are refused (the dead-server fault)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def debian_root(self) -> str:
        return f"{self.base}/debian/"

    @property
    def ubuntu_root(self) -> str:
        return f"{self.base}/ubuntu/"

    # -- content ----------------------------------------------------------------------------

    def add_debian(self, version: str, codename: str, snapshot: str) -> Dict[str, str]:
        """A dated Debian snapshot with both arches' raw images and SHA512SUMS (also a
        ``.json`` manifest and a qcow2 file nobody asks for, as upstream has). Returns
        arch -> image path."""
        directory = f"/debian/{codename}/{snapshot}/"
        images = {
            arch: f"{directory}debian-{version}-generic-{arch}-{snapshot}.raw" for arch in ARCHES
        }
        for path in images.values():
            self.files[path] = make_image(path, self.image_size)
        extra = f"{directory}debian-{version}-generic-amd64-{snapshot}.json"
        self.files[extra] = b'{"kind": "manifest"}\n'
        for moving in ("latest", "daily"):
            self.files.setdefault(f"/debian/{codename}/{moving}/README", b"moving pointer\n")
        self._write_sums(directory, "SHA512SUMS", "sha512", "  ")
        return images

    def add_ubuntu(self, version: str, codename: str, snapshot: str) -> Dict[str, str]:
        """An Ubuntu release snapshot with both arches' .img files and SHA256SUMS, and the
        version -> codename redirect. Returns arch -> image path."""
        directory = f"/ubuntu/{codename}/{snapshot}/"
        images = {
            arch: f"{directory}ubuntu-{version}-server-cloudimg-{arch}.img" for arch in ARCHES
        }
        for path in images.values():
            self.files[path] = make_image(path, self.image_size)
        self.files[f"{directory}ubuntu-{version}-server-cloudimg-amd64.manifest"] = b"pkg 1\n"
        for moving in ("current", "release"):
            self.files.setdefault(f"/ubuntu/{codename}/{moving}/README", b"moving pointer\n")
        self.redirects[f"/ubuntu/{version}/"] = f"/ubuntu/{codename}/"
        self._write_sums(directory, "SHA256SUMS", "sha256", " *")
        return images

    def _write_sums(self, directory: str, name: str, algorithm: str, sep: str) -> None:
        lines = []
        for path in sorted(self.files):
            if path.startswith(directory) and "/" not in path[len(directory) :]:
                base = path[len(directory) :]
                if base.startswith(("SHA", "README")):
                    continue
                digest = hashlib.new(algorithm, self.files[path]).hexdigest()
                lines.append(f"{digest}{sep}{base}\n")
        self.set_sums(directory + name, "".join(lines).encode())

    def set_sums(self, path: str, data: bytes) -> None:
        """Replace a sums file, signing it again when a signer is set."""
        self.files[path] = data
        if self.signer is not None:
            self.files[path + _SIGNATURE_SUFFIX[path.rsplit("/", 1)[1]]] = self.signer(data)

    def sign_all(self, signer: Signer) -> None:
        """Sign every sums file now and every one written later (SHA512SUMS.sign and
        SHA256SUMS.gpg, as upstream names them)."""
        self.signer = signer
        for path in [p for p in self.files if p.rsplit("/", 1)[1] in _SIGNATURE_SUFFIX]:
            self.set_sums(path, self.files[path])

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def url(self, path: str) -> str:
        return self.base + path

    # -- faults -----------------------------------------------------------------------------

    def remove(self, path: str) -> None:
        """The file vanishes from its directory (listing and 404); sums files keep their line."""
        del self.files[path]

    def drop_sums_line(self, sums_path: str, name: str) -> None:
        lines = self.files[sums_path].decode().splitlines(keepends=True)
        kept = [line for line in lines if not line.rstrip("\n").endswith(name)]
        assert len(kept) == len(lines) - 1, f"{name} not in {sums_path}"
        self.set_sums(sums_path, "".join(kept).encode())

    def corrupt_sum(self, sums_path: str, name: str) -> None:
        """Flip the checksum of ``name`` (keeping its length and hex-ness)."""
        text = self.files[sums_path].decode()

        def flip(m: re.Match[str]) -> str:
            digest = m.group(1)
            return ("0" if digest[0] != "0" else "1") + digest[1:] + m.group(2)

        new, count = re.subn(rf"^([0-9a-f]+)([ *]+{re.escape(name)})$", flip, text, flags=re.M)
        assert count == 1, f"{name} not in {sums_path}"
        self.set_sums(sums_path, new.encode())

    def break_listing(self, directory: str, body: bytes) -> None:
        """Serve ``body`` instead of the generated index of ``directory``."""
        self.broken_listings[directory] = body

    # -- observation -------------------------------------------------------------------------

    def log(self, method: str, path: str, status: int, sent: int) -> None:
        with self._lock:
            self.requests.append(Request(method, path, status, sent))

    def image_requests(self) -> List[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(IMAGE_SUFFIXES)]

    def image_bytes_sent(self) -> int:
        return sum(r.sent for r in self.image_requests())

    def paths(self) -> List[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- serving -----------------------------------------------------------------------------

    def children(self, directory: str) -> Tuple[List[str], List[str]]:
        dirs, files = set(), set()
        for path in self.files:
            if path.startswith(directory):
                rest = path[len(directory) :]
                if "/" in rest:
                    dirs.add(rest.split("/", 1)[0])
                else:
                    files.add(rest)
        return sorted(dirs), sorted(files)

    def index_page(self, directory: str) -> Optional[bytes]:
        if directory in self.broken_listings:
            return self.broken_listings[directory]
        dirs, files = self.children(directory)
        if not dirs and not files:
            return None
        if directory.startswith("/ubuntu/"):
            return _ubuntu_index(directory, dirs, files)
        return _apache_index(directory, dirs, files)


_SIGNATURE_SUFFIX = {"SHA512SUMS": ".sign", "SHA256SUMS": ".gpg"}


def _apache_index(directory: str, dirs: List[str], files: List[str]) -> bytes:
    rows = [
        '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
        f'<td><a href="{html.escape(directory.rsplit("/", 2)[0] + "/")}">Parent Directory</a>'
        '</td><td>&nbsp;</td><td align="right">  - </td></tr>'
    ]
    for name in dirs:
        rows.append(
            '<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td>'
            f'<td><a href="{html.escape(name)}/">{html.escape(name)}/</a></td>'
            '<td align="right">2026-06-01 22:01  </td><td align="right">  - </td></tr>'
        )
    for name in files:
        rows.append(
            '<tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td>'
            f'<td><a href="{html.escape(name)}">{html.escape(name)}</a></td>'
            '<td align="right">2026-06-01 22:01  </td><td align="right">2.0G</td></tr>'
        )
    title = f"Index of {html.escape(directory.rstrip('/'))}"
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
        f"  <title>{title}</title>\n </head>\n <body>\n<h1>{title}</h1>\n  <table>\n"
        '   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th>'
        '<th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th>'
        '<th><a href="?C=S;O=A">Size</a></th></tr>\n   <tr><th colspan="4"><hr></th></tr>\n'
        + "\n".join(rows)
        + '\n   <tr><th colspan="4"><hr></th></tr>\n</table>\n'
        "<address>Apache/2.4.62 (Debian) Server at cloud.debian.org Port 443</address>\n"
        "</body></html>\n"
    )
    return page.encode()


def _ubuntu_index(directory: str, dirs: List[str], files: List[str]) -> bytes:
    entries = ['<img src="/icons/back.gif" alt="[PARENTDIR]"> <a href="../">Parent Directory</a>']
    for name in dirs:
        entries.append(
            f'<img src="/icons/folder.gif" alt="[DIR]"> <a href="{html.escape(name)}/">'
            f"{html.escape(name)}/</a>{' ' * max(1, 30 - len(name))}2026-05-18 14:02    -"
        )
    for name in files:
        entries.append(
            f'<img src="/icons/unknown.gif" alt="[   ]"> <a href="{html.escape(name)}">'
            f"{html.escape(name)}</a>{' ' * max(1, 50 - len(name))}2026-05-18 14:02  600M"
        )
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n<head>\n'
        f"<title>Ubuntu Cloud Images - {html.escape(directory)}</title>\n</head>\n<body>\n"
        '<div id="header"><a href="https://ubuntu.com/">Ubuntu</a> '
        '<a href="https://cloud-images.ubuntu.com/">Cloud images</a></div>\n'
        '<pre><img src="/icons/blank.gif" alt="Icon "> <a href="?C=N;O=D">Name</a>'
        '                    <a href="?C=M;O=A">Last modified</a>      '
        '<a href="?C=S;O=A">Size</a>\n<hr>' + "\n".join(entries) + "\n<hr></pre>\n</body></html>\n"
    )
    return page.encode()


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.1"
    server_version = "FakeUpstream/1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log replaces stderr noise

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _send(self, status: int, body: bytes, headers: Dict[str, str], head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if not head:
            try:
                self.wfile.write(body)
                sent = len(body)
            except OSError:
                pass
        path = self.path.split("?", 1)[0]
        self.upstream.log(self.command, path, status, sent)

    def _serve(self, head: bool) -> None:
        fake = self.upstream
        path = self.path.split("?", 1)[0]
        if path in fake.redirects:
            location = fake.url(fake.redirects[path])
            self._send(301, b"moved\n", {"Location": location}, head)
            return
        if path.endswith("/"):
            page = fake.index_page(path)
            if page is None:
                self._send(404, b"not found\n", {"Content-Type": "text/plain"}, head)
            else:
                self._send(200, page, {"Content-Type": "text/html;charset=UTF-8"}, head)
            return
        data = fake.files.get(path)
        if data is None:
            self._send(404, b"not found\n", {"Content-Type": "text/plain"}, head)
            return
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": etag,
            "Accept-Ranges": "bytes",
        }
        wanted = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if_range = self.headers.get("If-Range")
        if wanted and (if_range is None or if_range == etag):
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)) if wanted.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(416, b"", headers, head)
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(206, data[start : end + 1], headers, head)
            return
        self._send(200, data, headers, head)
