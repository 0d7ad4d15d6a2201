"""fetch / read_url / hash_url against the fault-injecting server, one fault at a time."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import shutil
import ssl
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from faultserver import FaultServer, make_cert

from pyimagecache import download
from pyimagecache.download import retry
from pyimagecache.errors import ChecksumMismatchError, DigestError, DownloadError
from pyimagecache.settings import Retry, Settings

# Backoff in milliseconds, passed down as settings (no module globals to patch).
FAST = Settings(retry=Retry(backoff_base=0.001, backoff_max=0.005))
fetch = functools.partial(download.fetch, settings=FAST)
hash_url = functools.partial(download.hash_url, settings=FAST)
read_url = functools.partial(download.read_url, settings=FAST)

SIZE = 300_000


@pytest.fixture
def data() -> bytes:
    return random.Random(SIZE).randbytes(SIZE)


@pytest.fixture
def server(data: bytes) -> Iterator[FaultServer]:
    with FaultServer(data) as srv:
        yield srv


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(dest: Path) -> List[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name + ".part.lock")


def test_plain_download_is_verified_and_leaves_nothing_behind(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    calls: List[Tuple[int, Optional[int]]] = []
    got = fetch(
        server.url, dest, sha256=sha(data).upper(), progress=lambda d, t: calls.append((d, t))
    )
    assert got == dest and dest.read_bytes() == data
    assert leftovers(dest) == ["disk.img"]
    assert calls[-1] == (SIZE, SIZE)
    assert [(r.status, r.range) for r in server.log] == [(200, "")]


@pytest.mark.parametrize("fault", ["short:100000", "drop:100000"])
def test_dropped_body_resumes_from_the_exact_offset(
    server: FaultServer, data: bytes, tmp_path: Path, fault: str
) -> None:
    server.schedule(fault)
    dest = fetch(server.url, tmp_path / "disk.img", sha256=sha(data))
    assert dest.read_bytes() == data
    first, second = server.log
    assert (first.status, first.sent) == (200, 100_000)
    assert (second.status, second.range, second.if_range) == (206, "bytes=100000-", server.etag)
    assert second.sent == SIZE - 100_000


def test_failed_call_resumes_on_the_next_call(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    server.schedule("short:120000", "500", "500")
    with pytest.raises(DownloadError) as info:
        fetch(server.url, dest, sha256=sha(data), retries=2)
    err = info.value
    assert (err.done, err.total) == (120_000, SIZE)
    assert "120000 of 300000" in str(err) and "next call resumes" in str(err)
    assert not dest.exists()
    part = tmp_path / "disk.img.part"
    assert part.read_bytes() == data[:120_000]
    meta = json.loads((tmp_path / "disk.img.part.meta").read_text())
    assert meta == {
        "url": server.url,
        "etag": server.etag,
        "last_modified": server.last_modified,
        "total": SIZE,
    }
    fetch(server.url, dest, sha256=sha(data))
    assert dest.read_bytes() == data
    assert server.log[-1].range == "bytes=120000-" and server.log[-1].sent == SIZE - 120_000
    assert leftovers(dest) == ["disk.img"]


@pytest.mark.parametrize("fault", ["ignore_range", "new_etag"])
def test_a_200_to_a_range_request_starts_over(
    server: FaultServer, data: bytes, tmp_path: Path, fault: str
) -> None:
    server.schedule("short:50000", fault)
    dest = fetch(server.url, tmp_path / "disk.img", sha256=sha(data))
    assert dest.read_bytes() == data
    assert [r.status for r in server.log] == [200, 200]
    assert server.log[1].range == "bytes=50000-"
    assert server.log[1].sent == SIZE


@pytest.mark.parametrize("fault", ["bad_start", "bad_total"])
def test_a_206_for_the_wrong_range_is_refused(
    server: FaultServer, data: bytes, tmp_path: Path, fault: str
) -> None:
    server.schedule("short:50000", fault)
    dest = fetch(server.url, tmp_path / "disk.img", sha256=sha(data))
    assert dest.read_bytes() == data
    assert [(r.status, r.range) for r in server.log] == [
        (200, ""),
        (206, "bytes=50000-"),
        (200, ""),
    ]


def test_upstream_replaced_between_calls(server: FaultServer, data: bytes, tmp_path: Path) -> None:
    dest = tmp_path / "disk.img"
    server.schedule("short:50000")
    with pytest.raises(DownloadError):
        fetch(server.url, dest, retries=0)
    new = bytes(reversed(data))
    server.replace(new)
    # Pinned to the old digest: the new file downloads in full and is refused.
    with pytest.raises(ChecksumMismatchError) as info:
        fetch(server.url, dest, sha256=sha(data))
    assert (info.value.expected, info.value.actual) == (sha(data), sha(new))
    assert server.log[-1].status == 200 and server.log[-1].if_range != server.etag
    assert leftovers(dest) == []
    fetch(server.url, dest, sha256=sha(new))
    assert dest.read_bytes() == new


def test_checksum_mismatch_keeps_the_old_dest(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumMismatchError, match="SHA-256 mismatch"):
        fetch(server.url, dest, sha256="0" * 64)
    assert dest.read_bytes() == b"old"
    assert leftovers(dest) == ["disk.img"]


def test_416_with_an_incomplete_partial_starts_over(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    server.schedule("short:1000", "416")
    dest = fetch(server.url, tmp_path / "disk.img", sha256=sha(data))
    assert dest.read_bytes() == data
    assert [(r.status, r.range) for r in server.log] == [(200, ""), (416, "bytes=1000-"), (200, "")]


def test_416_without_a_partial_fails_at_once(server: FaultServer, tmp_path: Path) -> None:
    server.schedule("416")
    with pytest.raises(DownloadError, match="HTTP 416"):
        fetch(server.url, tmp_path / "disk.img")
    assert len(server.log) == 1


def test_stall_longer_than_read_timeout_is_retried(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    server.schedule("stall:1.5")
    started = time.monotonic()
    dest = fetch(server.url, tmp_path / "disk.img", sha256=sha(data), timeout=(5, 0.3))
    assert time.monotonic() - started < 1.4
    assert dest.read_bytes() == data
    assert server.log[-1].status == 206 and server.log[-1].range == f"bytes={SIZE // 2}-"


@pytest.mark.parametrize("status", ["503", "429"])
def test_retry_after_is_honoured(
    server: FaultServer, data: bytes, tmp_path: Path, status: str
) -> None:
    server.schedule(f"{status}:1")
    started = time.monotonic()
    fetch(server.url, tmp_path / "disk.img", sha256=sha(data))
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in server.log] == [int(status), 200]


@pytest.mark.parametrize("status", ["404", "403"])
def test_other_4xx_fail_at_once(server: FaultServer, tmp_path: Path, status: str) -> None:
    server.schedule(status)
    with pytest.raises(DownloadError, match=f"HTTP {status}") as info:
        fetch(server.url, tmp_path / "disk.img", retries=5)
    assert len(server.log) == 1
    assert (info.value.url, info.value.path) == (server.url, str(tmp_path / "disk.img.part"))
    assert info.value.done == 0


def test_5xx_are_retried_a_bounded_number_of_times(server: FaultServer, tmp_path: Path) -> None:
    server.schedule(*["500"] * 10)
    with pytest.raises(DownloadError, match="HTTP 500.*gave up after 4 attempts"):
        fetch(server.url, tmp_path / "disk.img", retries=3)
    assert len(server.log) == 4


def test_redirects_are_followed_and_resume_through_them(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    server.schedule("redirect", "short:7000", "redirect")
    dest = fetch(server.url, tmp_path / "disk.img", sha256=sha(data))
    assert dest.read_bytes() == data
    assert [(r.path, r.status, r.range) for r in server.log] == [
        ("/file", 302, ""),
        ("/file?r=1", 200, ""),
        ("/file", 302, "bytes=7000-"),
        ("/file?r=2", 206, "bytes=7000-"),
    ]


def test_redirect_loop_is_an_error(server: FaultServer, tmp_path: Path) -> None:
    server.schedule("redirect_loop")
    with pytest.raises(DownloadError, match="redirect loop"):
        fetch(server.url, tmp_path / "disk.img")
    assert len(server.log) == 3


def test_weak_etag_is_never_used_to_resume(data: bytes, tmp_path: Path) -> None:
    with FaultServer(data, last_modified=False, weak_etag=True) as srv:
        srv.schedule("short:50000")
        dest = fetch(srv.url, tmp_path / "disk.img", sha256=sha(data))
        assert dest.read_bytes() == data
        assert [(r.range, r.sent) for r in srv.log] == [("", 50_000), ("", SIZE)]
        srv.schedule("short:50000")
        with pytest.raises(DownloadError):
            fetch(srv.url, tmp_path / "b.img", retries=0)
        # The partial was written under a weak ETag: the next call cannot trust it.
        srv.clear_log()
        fetch(srv.url, tmp_path / "b.img", sha256=sha(data))
        assert [(r.range, r.if_range, r.sent) for r in srv.log] == [("", "", SIZE)]


def test_last_modified_is_used_when_there_is_no_etag(data: bytes, tmp_path: Path) -> None:
    with FaultServer(data, etag=False) as srv:
        srv.schedule("short:50000")
        dest = fetch(srv.url, tmp_path / "disk.img", sha256=sha(data))
        assert dest.read_bytes() == data
        assert (srv.log[1].status, srv.log[1].if_range) == (206, srv.last_modified)


def test_a_partial_of_another_url_is_discarded(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    server.schedule("short:50000")
    with pytest.raises(DownloadError):
        fetch(server.url + "?mirror=1", dest, retries=0)
    fetch(server.url, dest, sha256=sha(data))
    assert server.log[-1].range == "" and server.log[-1].sent == SIZE


def test_a_corrupt_sidecar_means_start_over(
    server: FaultServer, data: bytes, tmp_path: Path
) -> None:
    dest = tmp_path / "disk.img"
    server.schedule("short:50000")
    with pytest.raises(DownloadError):
        fetch(server.url, dest, retries=0)
    (tmp_path / "disk.img.part.meta").write_text('{"url": 3')
    fetch(server.url, dest, sha256=sha(data))
    assert server.log[-1].range == "" and dest.read_bytes() == data


def test_http_proxy_and_no_proxy(
    server: FaultServer, data: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    fetch("http://images.example.invalid/file", tmp_path / "a.img", sha256=sha(data))
    assert server.log[-1].proxied
    # ALL_PROXY is the fallback; NO_PROXY exempts the (direct) server from a dead proxy.
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    fetch(server.url, tmp_path / "b.img", sha256=sha(data))
    assert not server.log[-1].proxied
    monkeypatch.setenv("NO_PROXY", "other.example")
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch(server.url, tmp_path / "c.img", retries=0)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    return make_cert(tmp_path_factory.mktemp("tls"))


def test_https_with_ca_bundle_and_refused_downgrade(
    data: bytes, tmp_path: Path, cert: Tuple[Path, Path], server: FaultServer
) -> None:
    with FaultServer(data, tls=cert) as tls:
        dest = fetch(tls.url, tmp_path / "a.img", sha256=sha(data), ca_bundle=str(cert[0]))
        assert dest.read_bytes() == data
        tls.downgrade_port = server.port
        tls.schedule("downgrade")
        with pytest.raises(DownloadError, match="https must not downgrade"):
            fetch(tls.url, tmp_path / "b.img", ca_bundle=str(cert[0]))
        assert server.log == []


def test_https_is_verified(
    data: bytes, tmp_path: Path, cert: Tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with FaultServer(data, tls=cert) as tls:
        with pytest.raises(DownloadError, match="TLS error.*(?i:certificate)"):
            fetch(tls.url, tmp_path / "a.img", retries=3)
        assert tls.log == []
        # SSL_CERT_FILE is honoured (truststore steps aside when it is set).
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
        assert fetch(tls.url, tmp_path / "b.img").read_bytes() == data


def test_read_url(server: FaultServer, data: bytes) -> None:
    server.schedule("redirect", "short:1000", "redirect")
    got = read_url(server.url)
    assert got.data == data and got.url == server.url + "?r=2"
    assert got.status == 206 and got.headers["ETag"] == server.etag
    with pytest.raises(DownloadError, match="larger than the 1000 bytes"):
        read_url(server.url, max_bytes=1000)


def test_hash_url_resumes_and_restarts(server: FaultServer, data: bytes) -> None:
    server.schedule("short:100000", "short:150000", "ignore_range")
    got = hash_url(server.url, ("sha256", "sha512"))
    assert got == {"sha256": sha(data), "sha512": hashlib.sha512(data).hexdigest()}
    assert [(r.status, r.range) for r in server.log] == [
        (200, ""),
        (206, "bytes=100000-"),
        (200, "bytes=250000-"),
    ]
    # A bad algorithm is a usage error from the hashing module, as from every entry point.
    with pytest.raises(DigestError, match="unknown hash algorithm"):
        hash_url(server.url, ("sha257",))


def test_bad_arguments_are_clear_errors(server: FaultServer, tmp_path: Path) -> None:
    with pytest.raises(DigestError, match="64 hexadecimal digits"):
        fetch(server.url, tmp_path / "a", sha256="abc")
    with pytest.raises(DigestError, match="128 hexadecimal digits"):
        fetch(server.url, tmp_path / "a", sha512="ab" * 32)
    with pytest.raises(DownloadError, match="not an http"):
        fetch("ftp://127.0.0.1/file", tmp_path / "a")
    with pytest.raises(ValueError, match="read timeout"):
        fetch(server.url, tmp_path / "a", timeout=(1, 0))
    assert server.log == []


def test_retry_after_parsing() -> None:
    assert retry.parse_retry_after("7") == 7.0
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry.parse_retry_after("soon") is None
    assert retry.parse_retry_after(None) is None
    assert Retry().delay(1, retry_after=5000) == Retry().max_retry_after


def test_tls_context_sources(monkeypatch: pytest.MonkeyPatch, cert: Tuple[Path, Path]) -> None:
    from pyimagecache.download.client import tls_context

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    try:
        import truststore
    except ImportError:
        truststore = None
    ctx = tls_context(None)
    if truststore is not None:
        assert isinstance(ctx, truststore.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    assert type(tls_context(None)) is ssl.SSLContext
    bundle = tls_context(str(cert[0]))
    assert [c["subject"] for c in bundle.get_ca_certs()] == [((("commonName", "127.0.0.1"),),)]
    with pytest.raises(DownloadError, match="CA bundle .* is not a file"):
        tls_context("/nonexistent.pem")


def test_empty_file(tmp_path: Path) -> None:
    with FaultServer(b"") as srv:
        dest = fetch(srv.url, tmp_path / "empty", sha256=sha(b""))
        assert dest.read_bytes() == b"" and leftovers(dest) == ["empty"]


def test_progress_is_rate_limited(data: bytes, tmp_path: Path) -> None:
    calls: List[Tuple[int, Optional[int]]] = []
    with FaultServer(data, rate=SIZE / 0.6) as srv:
        started = time.monotonic()
        fetch(srv.url, tmp_path / "a", progress=lambda d, t: calls.append((d, t)))
        elapsed = time.monotonic() - started
    # At most one call per 0.1 s, plus the first and the final one.
    assert 3 <= len(calls) <= elapsed / 0.1 + 2
    assert calls[-1] == (SIZE, SIZE)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_body_is_never_decoded(data: bytes, tmp_path: Path) -> None:
    # A mislabelled .gz (served with Content-Encoding: gzip) must arrive byte for byte.
    with FaultServer(data, content_encoding="gzip") as srv:
        srv.schedule("short:5000")
        dest = fetch(srv.url, tmp_path / "a", sha256=sha(data))
        assert dest.read_bytes() == data
        assert [r.accept_encoding for r in srv.log] == ["identity", "identity"]
        assert read_url(srv.url).data == data
