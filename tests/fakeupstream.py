"""A fake upstream image server for the catalog refresher's tests.

    >>> with FakeUpstream() as fake:                               # doctest: +SKIP
    ...     fakeupstreams.publish(fake, "debian", version="12", codename="bookworm", ...)
    ...     refresh_catalog(path, roots=fake.roots())
    ...     fake.image_bytes_sent()
    0

A threaded http.server on 127.0.0.1 (ephemeral port) serving a virtual tree of files: generated
HTML directory indexes in the styles real servers use (an Apache table, Ubuntu's ``<pre>``
listing, nginx's autoindex), redirects, single Range requests. Checksum files are registered
as :class:`Sums` and rendered from the files they cover, in the real formats (coreutils, BSD
with size comments, bare, Oracle's template JSON), with detached or clear signatures made with
the real gpg by this process's throwaway key (:func:`gpgkeys.shared_key`;
:attr:`FakeUpstream.keyring` is its keyring, which tests pass as ``--keyring`` the way a user
replaces the shipped keys), or by the signer a test sets; with the signer set to None, no
detached signature is published and a clear-signed file gets a placeholder armour (so it always
looks like upstream's). :mod:`fakeupstreams` knows each family's layout. Every request is
logged with the body bytes actually sent, and switches inject the faults the refresher must
survive: a missing file or sums line, a wrong checksum, tampering, a malformed listing, a dead
server.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from gpgkeys import shared_clear, shared_detach, shared_key

IMAGE_SUFFIXES = (".raw", ".img", ".qcow2", ".xz", ".vmdk", ".squashfs")
#: Signs data: data -> signature (detached) or data -> clear-signed message.
Signer = Callable[[bytes], bytes]


class Request(NamedTuple):
    method: str
    path: str
    status: int
    sent: int  # body bytes written to the socket


@dataclass
class Sums:
    """A checksum file the fake renders: over ``members`` (paths), in ``fmt``.

    ``fmt``: ``coreutils`` (``<hex>  <file>``), ``coreutils-binary`` (``<hex> *<file>``),
    ``coreutils-1`` (``<hex> <file>``), ``bsd`` (with ``# <file>: <n> bytes`` comments),
    ``bsd-repeated`` (each line twice, as Rocky's sidecars), ``bare``, ``oracle``.
    ``signature``: ``""``, a detached suffix (``.gpg``, ``.asc``, ``.sig``, ``.sign``) or
    ``clear``. ``dir_wide``: members are every image-like file in its directory."""

    path: str
    fmt: str
    algorithm: str = "sha256"
    signature: str = ""
    dir_wide: bool = False
    members: Tuple[str, ...] = ()
    base_url: str = ""  # oracle: the template's base_url


def make_image(path: str, size: int) -> bytes:
    """Deterministic, distinct content per path: random ends around a zero run (like a disk),
    in a qcow2 container when the name says qcow2 (ensure refuses bytes that are not what the
    name claims)."""
    rng = random.Random(path)
    if size < 8192:
        data = rng.randbytes(size)
    else:
        data = rng.randbytes(4096) + bytes(size - 8192) + rng.randbytes(4096)
    if not path.endswith(".qcow2"):
        return data
    from qcow2writer import Data, Qcow2Writer

    writer = Qcow2Writer(len(data), cluster_bits=12)
    for index in range(0, len(data), 4096):
        chunk = data[index : index + 4096]
        if chunk.strip(b"\0"):
            writer[index // 4096] = Data(chunk)
    return writer.build().bytes()


def placeholder_clearsign(data: bytes) -> bytes:
    """The armour of a clear-signed message around ``data``, with a signature nobody made."""
    escaped = b"".join(
        (b"- " + line if line.startswith(b"-") else line) for line in data.splitlines(True)
    )
    return (
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        + escaped
        + b"-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEEplaceholder\n=AAAA\n"
        + b"-----END PGP SIGNATURE-----\n"
    )


class FakeUpstream:
    """Start with ``with FakeUpstream() as fake:`` (or start()/stop())."""

    def __init__(self, image_size: int = 64 * 1024) -> None:
        self.image_size = image_size
        self.files: Dict[str, bytes] = {}
        self.sums: Dict[str, Sums] = {}
        self.redirects: Dict[str, str] = {}
        self.broken_listings: Dict[str, bytes] = {}
        #: path prefix -> index style ("apache", "pre", "nginx"); the longest prefix wins.
        self.styles: Dict[str, str] = {}
        self.requests: List[Request] = []
        self.signer: Optional[Signer] = shared_detach
        self.clear_signer: Optional[Signer] = shared_clear
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

    def root(self, distro: str) -> str:
        """Where family ``distro``'s tree is served (its upstream root's stand-in)."""
        return f"{self.base}/{distro}/"

    def roots(self) -> Dict[str, str]:
        """``refresh_catalog(roots=...)`` for every family served here."""
        return {top.split("/")[1]: self.root(top.split("/")[1]) for top in self.files}

    @property
    def keyring(self) -> Path:
        """The binary keyring of the key that signs this fake's checksum files by default."""
        return shared_key().keyring

    @property
    def debian_root(self) -> str:
        return self.root("debian")

    @property
    def ubuntu_root(self) -> str:
        return self.root("ubuntu")

    def url(self, path: str) -> str:
        return self.base + path

    # -- content ----------------------------------------------------------------------------

    def add_image(self, path: str) -> str:
        """An image-like file at ``path`` (deterministic bytes); returns the path."""
        self.files[path] = make_image(path, self.image_size)
        return path

    def add_sums(self, sums: Sums) -> None:
        """Register (or extend) a checksum file and render it."""
        have = self.sums.get(sums.path)
        if have is not None and not sums.dir_wide:
            sums.members = tuple(dict.fromkeys(have.members + sums.members))
        self.sums[sums.path] = sums
        self.render(sums.path)

    def covered(self, sums: Sums) -> List[str]:
        if not sums.dir_wide:
            return [m for m in sums.members if m in self.files]
        directory = sums.path.rsplit("/", 1)[0] + "/"
        return [
            p
            for p in sorted(self.files)
            if p.startswith(directory)
            and "/" not in p[len(directory) :]
            and p.endswith(IMAGE_SUFFIXES)
        ]

    def sums_text(self, path: str) -> bytes:
        """The unsigned text of the registered checksum file at ``path``."""
        sums = self.sums[path]
        lines = []
        for member in self.covered(sums):
            name = member.rsplit("/", 1)[1]
            data = self.files[member]
            digest = hashlib.new(sums.algorithm, data).hexdigest()
            upper = sums.algorithm.upper()
            if sums.fmt == "coreutils":
                lines.append(f"{digest}  {name}\n")
            elif sums.fmt == "coreutils-binary":
                lines.append(f"{digest} *{name}\n")
            elif sums.fmt == "coreutils-1":
                lines.append(f"{digest} {name}\n")
            elif sums.fmt in ("bsd", "bsd-repeated"):
                if sums.fmt == "bsd":
                    lines.append(f"# {name}: {len(data)} bytes\n")
                lines.append(f"{upper} ({name}) = {digest}\n")
                if sums.fmt == "bsd-repeated":
                    lines.append(lines[-1])
            elif sums.fmt == "bare":
                lines.append(f"{digest}\n")
            elif sums.fmt == "oracle":
                doc = {
                    "base_url": sums.base_url,
                    "kvm": {"image": name, "sha256": digest},
                    "olvm": {"image": name.replace(".qcow2", ".ova"), "sha256": "0" * 64},
                }
                lines.append(json.dumps(doc, indent=2) + "\n")
            else:
                raise ValueError(sums.fmt)
        return "".join(lines).encode()

    def render(self, path: str, text: Optional[bytes] = None) -> None:
        """Write the checksum file (``text``, else generated) and sign it as upstream does."""
        sums = self.sums[path]
        data = self.sums_text(path) if text is None else text
        if sums.signature == "clear":
            self.files[path] = (self.clear_signer or placeholder_clearsign)(data)
        else:
            self.files[path] = data
        if sums.signature not in ("", "clear"):
            if self.signer is not None:
                self.files[path + sums.signature] = self.signer(data)
            else:
                self.files.pop(path + sums.signature, None)

    def refresh_sums(self, touched: Optional[List[str]] = None) -> None:
        """Render every checksum file again (after images changed or signers were set), or
        only those covering one of the ``touched`` paths."""
        dirs = None if touched is None else {t.rsplit("/", 1)[0] + "/" for t in touched}
        for path, sums in list(self.sums.items()):
            if dirs is None or (
                (path.rsplit("/", 1)[0] + "/" in dirs)
                if sums.dir_wide
                else any(m in touched for m in sums.members)  # type: ignore[operator]
            ):
                self.render(path)

    def sign_all(self, signer: Optional[Signer], clear_signer: Optional[Signer] = None) -> None:
        """Sign every checksum file now and every one written later."""
        self.signer, self.clear_signer = signer, clear_signer
        self.refresh_sums()

    def sha(self, path: str, algorithm: str = "sha256") -> str:
        return hashlib.new(algorithm, self.files[path]).hexdigest()

    def sha256(self, path: str) -> str:
        return self.sha(path, "sha256")

    # -- faults -----------------------------------------------------------------------------

    def remove(self, path: str) -> None:
        """The file vanishes from its directory (listing and 404); sums files keep their line."""
        del self.files[path]

    def drop_sums_line(self, sums_path: str, name: str) -> None:
        """Re-publish (and re-sign) the checksum file without ``name``'s line."""
        text = self.sums_text(sums_path).decode()
        kept = [line for line in text.splitlines(True) if name not in line]
        assert len(kept) < len(text.splitlines()), f"{name} not in {sums_path}"
        self.render(sums_path, "".join(kept).encode())

    def corrupt_sum(self, sums_path: str, name: str) -> None:
        """Re-publish (and re-sign) the checksum file with ``name``'s digest changed."""
        text = self.sums_text(sums_path).decode()

        def flip(m: re.Match[str]) -> str:
            digest = m.group(0)
            return ("0" if digest[0] != "0" else "1") + digest[1:]

        lines = text.splitlines(True)
        count = 0
        for i, line in enumerate(lines):
            if name in line:
                lines[i], n = re.subn(r"[0-9a-f]{64,128}", flip, line, count=1)
                count += n
        assert count >= 1, f"{name} not in {sums_path}"
        new = "".join(lines)
        self.render(sums_path, new.encode())

    def tamper(self, path: str, old: bytes, new: bytes) -> None:
        """Change a served file in place, without signing it again."""
        assert old in self.files[path], (old, path)
        self.files[path] = self.files[path].replace(old, new)

    def set_file(self, path: str, data: bytes) -> None:
        self.files[path] = data

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
        prefixes = [p for p in self.styles if directory.startswith(p)]
        style = self.styles[max(prefixes, key=len)] if prefixes else "apache"
        return _STYLES[style](directory, dirs, files)


def _apache_index(directory: str, dirs: List[str], files: List[str]) -> bytes:
    rows = [
        '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
        f'<td><a href="{html.escape(directory.rsplit("/", 2)[0] + "/")}">Parent Directory</a>'
        '</td><td>&nbsp;</td><td align="right">  - </td></tr>'
    ]
    for name in dirs:
        rows.append(
            '<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td>'
            f'<td class="indexcolname"><a href="{html.escape(name)}/">{html.escape(name)}/</a>'
            '</td><td align="right">2026-06-01 22:01  </td><td align="right">  - </td></tr>'
        )
    for name in files:
        rows.append(
            '<tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td>'
            f'<td class="indexcolname"><a href="{html.escape(name)}">{html.escape(name)}</a>'
            '</td><td align="right">2026-06-01 22:01  </td><td align="right">2.0G</td></tr>'
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


def _pre_index(directory: str, dirs: List[str], files: List[str]) -> bytes:
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


def _nginx_index(directory: str, dirs: List[str], files: List[str]) -> bytes:
    """nginx autoindex, as FreeBSD's and Alpine's mirrors serve (absolute parent link)."""
    lines = ['<a href="../">../</a>']
    for name in dirs:
        lines.append(
            f'<a href="{html.escape(name)}/">{html.escape(name)}/</a>'
            + " " * 20
            + "01-Jun-2026 10:00       -"
        )
    for name in files:
        lines.append(
            f'<a href="{directory}{html.escape(name)}">{html.escape(name)}</a>'
            + " " * 20
            + "01-Jun-2026 10:00  123456"
        )
    title = f"Index of {html.escape(directory)}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<h1>{title}</h1><hr><pre>"
        + "\r\n".join(lines)
        + "\r\n</pre><hr></body>\r\n</html>\r\n"
    ).encode()


_STYLES = {"apache": _apache_index, "pre": _pre_index, "nginx": _nginx_index}
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.1"
    server_version = "FakeUpstream/1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

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
