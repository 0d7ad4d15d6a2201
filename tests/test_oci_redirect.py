"""Redirects and credentials: Authorization goes to the origin it was given for, never along a
redirect to another host or port (a registry's 307 to blob storage), and the other redirect
rules (no https -> http, loops, the cap) still hold."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

from pyimagecache.download import read_url
from pyimagecache.download.client import _origin
from pyimagecache.settings import Settings


class _Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, redirect_to: Optional[str] = None) -> None:
        super().__init__((host, 0), _Handler)
        self.redirect_to = redirect_to
        self.seen: List[Tuple[str, Optional[str]]] = []  # (path, Authorization)

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/redirect") and self.server.redirect_to is not None:
            self.send_response(307)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"blob bytes"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(server: _Recorder) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def servers() -> Iterator[Tuple[_Recorder, _Recorder]]:
    storage = _Recorder("127.0.0.2")  # "blob storage": another host
    registry = _Recorder("127.0.0.1")
    started = [storage, registry]
    for server in started:
        _serve(server)
    try:
        yield registry, storage
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


SECRET = "Bearer s3cr3t-token"
FAST = Settings(retry=0)


def test_authorization_dropped_on_redirect_to_another_host(
    servers: Tuple[_Recorder, _Recorder],
) -> None:
    registry, storage = servers
    registry.redirect_to = f"{storage.base}/data/blob"
    got = read_url(f"{registry.base}/redirect", headers={"Authorization": SECRET}, settings=FAST)
    assert got.data == b"blob bytes"
    assert registry.seen == [("/redirect", SECRET)]
    assert storage.seen == [("/data/blob", None)]


def test_authorization_dropped_on_redirect_to_another_port(
    servers: Tuple[_Recorder, _Recorder],
) -> None:
    registry, _ = servers
    other = _Recorder("127.0.0.1")
    _serve(other)
    try:
        registry.redirect_to = f"{other.base}/data"
        read_url(f"{registry.base}/redirect", headers={"Authorization": SECRET}, settings=FAST)
        assert other.seen == [("/data", None)]
    finally:
        other.shutdown()
        other.server_close()


def test_authorization_kept_on_same_origin_redirect(
    servers: Tuple[_Recorder, _Recorder],
) -> None:
    registry, _ = servers
    registry.redirect_to = "/data/elsewhere"  # relative: same scheme, host and port
    read_url(f"{registry.base}/redirect", headers={"Authorization": SECRET}, settings=FAST)
    assert registry.seen == [("/redirect", SECRET), ("/data/elsewhere", SECRET)]


def test_origin_compares_scheme_host_and_effective_port() -> None:
    assert _origin("https://Reg.example/v2/") == _origin("https://reg.example:443/x")
    assert _origin("http://reg.example/") != _origin("https://reg.example/")
    assert _origin("http://reg.example:5000/") != _origin("http://reg.example:5001/")


def test_no_secret_reaches_storage_even_via_fetch(
    servers: Tuple[_Recorder, _Recorder], tmp_path: Path
) -> None:
    """The resumable file download (transfer.py) goes through the same redirect code."""
    from pyimagecache.download.to_file import fetch_verified
    from pyimagecache.hashing import Expected

    registry, storage = servers
    registry.redirect_to = f"{storage.base}/data/blob"
    fetch_verified(
        f"{registry.base}/redirect",
        tmp_path / "out",
        Expected(),
        FAST,
        headers={"Authorization": SECRET},
    )
    assert (tmp_path / "out").read_bytes() == b"blob bytes"
    assert storage.seen == [("/data/blob", None)]


# -- a real registry behind a proxy that sends blob GETs to "storage" on another host --------


class _StorageProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to ``upstream`` except blob GETs, which get a 307 to
    ``storage`` (another host serving the registry's blob files), as a registry with S3
    storage and redirects does."""

    daemon_threads = True

    def __init__(self, upstream: str, storage: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.storage = storage

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _StorageProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._forward()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if "/blobs/sha256:" in self.path:
            digest = self.path.rpartition("/")[2]
            self.send_response(307)
            self.send_header("Location", f"{self.server.storage}/data/{digest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._forward()

    def _forward(self) -> None:
        import http.client

        conn = http.client.HTTPConnection(self.server.upstream, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        conn.close()


class _BlobStorage(_Recorder):
    """Serves /data/<digest> from a registry's storage directory, recording Authorization."""

    def __init__(self, host: str, registry: object) -> None:
        super().__init__(host)
        self.RequestHandlerClass = _StorageHandler
        self.registry = registry


class _StorageHandler(_Handler):
    server: _BlobStorage

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        data = self.server.registry.blob_path(self.path.rpartition("/")[2]).read_bytes()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"storage-etag"')
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.slow
def test_a_registrys_redirect_to_storage_elsewhere_gets_no_authorization(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from registry import RegistryServer, TokenServer, token_auth, write_auth_file

    from pyimagecache.oci import fetch_disk, push_file, resolve

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with TokenServer(tmp_path, {"bob": "pw-of-bob"}, anonymous=()) as tokens:
        reg = RegistryServer(tmp_path / "registry", auth=token_auth(tokens.realm, tokens.cert))
        with reg:
            auth = write_auth_file(tmp_path / "auth.json", reg.address, "bob", "pw-of-bob")
            src = tmp_path / "disk.img"
            src.write_bytes(os.urandom(200_000))
            monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
            push_file(src, reg.ref("private/disk"), tag="v1", settings=FAST)
            storage = _BlobStorage("127.0.0.2", reg)
            proxy = _StorageProxy(reg.address, storage.base)
            # The proxy forwards Authorization to the registry, whose tokens are for
            # the registry's own service name whatever the host: credentials for the proxy.
            write_auth_file(auth, proxy.address, "bob", "pw-of-bob")
            for server in (storage, proxy):
                _serve(server)
            try:
                resolved = resolve(f"oci://{proxy.address}/private/disk:v1", "amd64", FAST)
                fetch_disk(resolved, tmp_path / "out", FAST)
            finally:
                for server in (storage, proxy):
                    server.shutdown()
                    server.server_close()
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert storage.seen == [(f"/data/{resolved.blob.digest}", None)]
    assert tokens.issued  # the registry (private: every request needs one) got bearer tokens
