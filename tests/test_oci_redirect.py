"""Redirects and credentials: Authorization goes to the origin it was given for, never along a
redirect to another host or port (a registry's 307 to blob storage), and the other redirect
rules (no https -> http, loops, the cap) still hold."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from registry import LocalServer, QuietHandler

from pyimagecache.download import read_url
from pyimagecache.download.client import _origin
from pyimagecache.settings import Settings


class _Recorder(LocalServer):
    """Answers ``/redirect*`` with a 307 to ``redirect_to``, anything else with a small body;
    records (path, Authorization) of every request."""

    def __init__(self, host: str, handler: Optional[type] = None) -> None:
        super().__init__(handler or _Handler, host)
        self.redirect_to: Optional[str] = None
        self.seen: List[Tuple[str, Optional[str]]] = []


class _Handler(QuietHandler):
    server: _Recorder

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/redirect") and self.server.redirect_to is not None:
            self.reply(307, headers={"Location": self.server.redirect_to})
        else:
            self.reply(200, b"blob bytes")


@pytest.fixture
def servers() -> Iterator[Tuple[_Recorder, _Recorder]]:
    # "blob storage" on another host
    with _Recorder("127.0.0.1") as registry, _Recorder("127.0.0.2") as storage:
        yield registry, storage


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
    with _Recorder("127.0.0.1") as other:
        registry.redirect_to = f"{other.base}/data"
        read_url(f"{registry.base}/redirect", headers={"Authorization": SECRET}, settings=FAST)
        assert other.seen == [("/data", None)]


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


class _StorageProxy(LocalServer):
    """Forwards every request to ``upstream`` except blob GETs, which get a 307 to
    ``storage`` (another host serving the registry's blob files), as a registry with S3
    storage and redirects does."""

    def __init__(self, upstream: str, storage: str) -> None:
        super().__init__(_ProxyHandler)
        self.upstream = upstream
        self.storage = storage


class _ProxyHandler(QuietHandler):
    server: _StorageProxy

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._forward()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if "/blobs/sha256:" in self.path:
            digest = self.path.rpartition("/")[2]
            self.reply(307, headers={"Location": f"{self.server.storage}/data/{digest}"})
        else:
            self._forward()

    def _forward(self) -> None:
        import http.client

        conn = http.client.HTTPConnection(self.server.upstream, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        hop = ("connection", "transfer-encoding", "keep-alive", "content-length")
        self.reply(
            answer.status, body, {k: v for k, v in answer.getheaders() if k.lower() not in hop}
        )
        conn.close()


class _StorageHandler(QuietHandler):
    """Serves /data/<digest> from the registry's storage directory (``server.registry``)."""

    server: _Recorder

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        registry = self.server.registry  # type: ignore[attr-defined]
        self.reply(200, registry.blob_path(self.path.rpartition("/")[2]).read_bytes())


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
            storage = _Recorder("127.0.0.2", _StorageHandler)
            storage.registry = reg  # type: ignore[attr-defined]
            proxy = _StorageProxy(reg.address, storage.base)
            # The proxy forwards Authorization to the registry, whose tokens are for
            # the registry's own service name whatever the host: credentials for the proxy.
            write_auth_file(auth, proxy.address, "bob", "pw-of-bob")
            with storage, proxy:
                resolved = resolve(f"oci://{proxy.address}/private/disk:v1", "amd64", FAST)
                fetch_disk(resolved, tmp_path / "out", FAST)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert storage.seen == [(f"/data/{resolved.blob.digest}", None)]
    assert tokens.issued  # the registry (private: every request needs one) got bearer tokens
