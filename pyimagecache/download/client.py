"""One urllib3 pool manager per (proxy, CA bundle); requests that follow redirects safely.

urllib3's own redirect and retry handling is switched off: every retry must resume from the
bytes already on disk, and redirects must be capped, loop-checked and never downgrade https to
http, none of which urllib3's generic Retry does for us.
"""

from __future__ import annotations

import os
import ssl
import threading
import urllib.request
from typing import Dict, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import LocationParseError

from .. import __version__
from ..errors import DownloadError
from ..settings import Timeout

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"pyimagecache/{__version__}"

_PoolKey = Tuple[bool, Optional[str], Optional[str], Optional[str], Optional[str]]
_pools: Dict[_PoolKey, urllib3.PoolManager] = {}
_pools_lock = threading.Lock()


class Opened(NamedTuple):
    url: str  # after redirects
    response: urllib3.BaseHTTPResponse


def urllib3_timeout(timeout: Timeout) -> urllib3.Timeout:
    return urllib3.Timeout(connect=timeout.connect, read=timeout.read)


def tls_context(ca_bundle: Optional[str]) -> ssl.SSLContext:
    """A verifying context: ``ca_bundle`` when given; else truststore (the OS trust store) when
    installed and SSL_CERT_FILE / SSL_CERT_DIR do not point elsewhere; else OpenSSL's defaults,
    which honour those two variables."""
    if ca_bundle is not None:
        if not os.path.isfile(ca_bundle):
            raise DownloadError(f"CA bundle {ca_bundle} is not a file", path=ca_bundle)
        return ssl.create_default_context(cafile=ca_bundle)
    if not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")):
        try:
            import truststore
        except ImportError:
            pass
        else:
            ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            return ctx
    return ssl.create_default_context()


def proxy_for(url: str) -> Optional[str]:
    """The proxy URL for ``url`` from *_PROXY / ALL_PROXY, or None when NO_PROXY exempts it."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if urllib.request.proxy_bypass(host):
        return None
    return proxy


def pool_for(url: str, ca_bundle: Optional[str]) -> urllib3.PoolManager:
    proxy = proxy_for(url)
    https = urlsplit(url).scheme == "https"
    # The CA variables are part of the key: a context reads them when it is created.
    key: _PoolKey = (https, proxy, None, None, None)
    if https:
        cert_env = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
        key = (https, proxy, ca_bundle, *cert_env)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            # Plain http never pays for loading a CA store (tens of milliseconds).
            context = tls_context(ca_bundle) if https else None
            pool = _new_pool(proxy, context, url)
            _pools[key] = pool
        return pool


def _new_pool(
    proxy: Optional[str], context: Optional[ssl.SSLContext], url: str
) -> urllib3.PoolManager:
    options: Dict[str, object] = {"retries": False, "maxsize": 4}
    if context is not None:
        options["ssl_context"] = context
    if proxy is None:
        return urllib3.PoolManager(**options)  # type: ignore[arg-type]
    scheme = urlsplit(proxy).scheme.lower()
    if scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError as exc:
            raise DownloadError(
                f"proxy {proxy} for {url} needs PySocks: pip install 'urllib3[socks]'", url=url
            ) from exc
        return SOCKSProxyManager(proxy, **options)  # type: ignore[arg-type]
    try:
        return urllib3.ProxyManager(proxy, **options)  # type: ignore[arg-type]
    except (LocationParseError, ValueError) as exc:
        raise DownloadError(f"bad proxy URL {proxy!r} for {url}: {exc}", url=url) from exc


def check_http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"not an http(s) URL: {url!r}", url=url)


def open_url(
    url: str,
    headers: Mapping[str, str],
    *,
    timeout: urllib3.Timeout,
    ca_bundle: Optional[str],
    method: str = "GET",
) -> Opened:
    """GET (or HEAD) ``url`` with ``headers``, following up to MAX_REDIRECTS redirects.

    The body is not read; the caller owns the response and must release it. urllib3 exceptions
    (connection, timeout, protocol) propagate for the caller's retry logic; redirect problems
    raise DownloadError. An ``Authorization`` header is sent only to the origin (scheme, host,
    port) it was given for: a registry's redirect to blob storage elsewhere does not get it.
    """
    send = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    seen = {url}
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_http_url(current)
        response = pool_for(current, ca_bundle).urlopen(
            method,
            current,
            headers=send,
            redirect=False,
            retries=False,
            timeout=timeout,
            preload_content=False,
            decode_content=False,
        )
        location = response.headers.get("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return Opened(current, response)
        response.drain_conn()
        response.release_conn()
        target = urljoin(current, location.strip())
        if urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https":
            raise DownloadError(
                f"refusing redirect from {current} to {target}: https must not downgrade",
                url=url,
            )
        if target in seen:
            raise DownloadError(f"redirect loop: {current} -> {target}", url=url)
        if _origin(target) != _origin(current):
            send = {k: v for k, v in send.items() if k.lower() != "authorization"}
        seen.add(target)
        current = target
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects from {url}", url=url)


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # not a number: check_http_url or urllib3 rejects the URL itself
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)
