"""Talking to one registry: which scheme, authentication, retries, bounded bodies.

https always comes first. Plain http is tried when https fails to connect or to handshake,
but only for a registry on this machine (``localhost``, 127.0.0.0/8, ``::1``), as docker and
skopeo do, or one whose ``host:port`` is in ``settings.insecure_registries``. TLS is verified
as for ``fetch`` (``settings.ca_bundle``, else ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else the system
store), through the same urllib3 pools.

A 401 is answered once per request (see :mod:`.auth`); transient failures (connection errors,
timeouts, 408/429/5xx) are retried with ``settings.retry``'s backoff. Bodies read into memory
are capped; blobs never pass through here (they go to the resumable downloader).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import Any, Callable, Collection, Dict, Mapping, NamedTuple, Optional, Tuple, Union
from urllib.parse import urlsplit

from urllib3.exceptions import HTTPError, SSLError

from ..download import retry
from ..download.client import USER_AGENT, _origin, open_url, pool_for, urllib3_timeout
from ..errors import DownloadError, RegistryError
from ..settings import Settings
from .auth import MAX_TOKEN_BYTES, Authenticator, scope_for

log = logging.getLogger("pyimagecache")

#: Cap on a JSON body (manifest, error, token) read into memory.
MAX_BODY = 4 << 20
#: Statuses of GET /v2/ that prove a registry answers there.
_API_STATUSES = frozenset({200, 401, 403})

#: A request body: bytes, or a function returning a fresh stream (so a retry can resend it).
Body = Union[None, bytes, Callable[[], Any]]


class Response(NamedTuple):
    status: int
    headers: Mapping[str, str]
    data: bytes
    url: str  # after redirects


def is_loopback(registry: str) -> bool:
    """Whether ``host[:port]`` is this machine: localhost, 127.0.0.0/8 or ::1.

    >>> is_loopback("127.0.0.2:5000"), is_loopback("[::1]:5000"), is_loopback("10.0.0.1")
    (True, True, False)
    """
    host = (urlsplit(f"//{registry}").hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_allowed(registry: str, insecure_registries: Collection[str]) -> bool:
    """Whether ``registry`` may be reached over plain http: on this machine, or listed."""
    return is_loopback(registry) or registry.lower() in insecure_registries


def schemes_for(registry: str, settings: Settings) -> Tuple[str, ...]:
    """The schemes to try, in order.

    >>> schemes_for("reg.example:5000", Settings())
    ('https',)
    >>> schemes_for("reg.example:5000", Settings(insecure_registries=["reg.example:5000"]))
    ('https', 'http')
    """
    if plain_http_allowed(registry, settings.insecure_registries):
        return ("https", "http")
    return ("https",)


class _Unreachable(Exception):
    """A request that never got an HTTP answer."""


class Registry:
    """One repository of one registry, as one call of the public API talks to it."""

    def __init__(self, registry: str, repository: str, settings: Settings) -> None:
        self.registry = registry
        self.repository = repository
        self.settings = settings
        self.auth = Authenticator(registry, repository)
        self._timeout = urllib3_timeout(settings.timeout)
        self._base: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.registry}/{self.repository}"

    # -- URLs ---------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """``https://host`` (or ``http://host`` where allowed and https failed), probed once."""
        if self._base is None:
            self._base = self._probe()
        return self._base

    def api(self, path: str) -> str:
        """The URL of ``/v2/<repo>/<path>``."""
        return f"{self.base}/v2/{self.repository}/{path}"

    def blob_url(self, digest: str) -> str:
        return self.api(f"blobs/{digest}")

    def _probe(self) -> str:
        schemes = schemes_for(self.registry, self.settings)
        failures = []
        for scheme in schemes:
            url = f"{scheme}://{self.registry}/v2/"
            try:
                response = self._send("GET", url, {}, None, MAX_BODY, probe=True)
            except _Unreachable as exc:
                failures.append(f"{scheme}: {exc}")
                continue
            if response.status in _API_STATUSES:
                if scheme == "http":
                    log.debug("%s: https failed (%s); using plain http", self.registry, failures)
                return f"{scheme}://{self.registry}"
            failures.append(f"{scheme}: HTTP {response.status} for {url}, not a registry API")
        hint = ""
        if "http" not in schemes:
            hint = (
                "; if it serves plain http, add it to PYIMAGECACHE_INSECURE_REGISTRIES "
                f"({self.registry})"
            )
        raise RegistryError(
            f"cannot reach the registry {self.registry}: {'; '.join(failures)}{hint}",
            registry=self.registry,
            repository=self.repository,
        )

    # -- requests -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        what: str,
        actions: str = "pull",
        headers: Optional[Mapping[str, str]] = None,
        body: Body = None,
        ok: Collection[int] = (200,),
        max_bytes: int = MAX_BODY,
    ) -> Response:
        """Send a request to the registry, authenticating as it asks; a status outside ``ok``
        raises RegistryError (RegistryAuthError for 401/403) saying ``what`` was attempted."""
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        ours = _origin(url) == _origin(self.base)  # an upload Location may be elsewhere
        response = None
        for attempt in range(2):
            send = dict(headers or {})
            if self.auth.header is not None and ours:
                send["Authorization"] = self.auth.header
            response = self._send(method, url, send, body, max_bytes)
            if response.status != 401 or 401 in ok:
                break
            if attempt == 1:
                raise self.auth.rejected(401, actions)
            self._authenticate(
                response.headers.get("WWW-Authenticate", ""), scope_for(self.repository, actions)
            )
        assert response is not None
        if response.status not in ok:
            if response.status == 403:
                raise self.auth.rejected(403, actions)
            raise self.refused(response, what)
        return response

    def login(self, actions: str = "pull") -> None:
        """Earn the Authorization for ``actions`` on the repository before a request made
        outside :meth:`request` (a blob download): GET /v2/ with the repository's scope."""
        self.request("GET", "/v2/", what="the API root", actions=actions)

    def authorization(self) -> Dict[str, str]:
        """The header to send with a download outside :meth:`request` (a blob GET)."""
        return {"Authorization": self.auth.header} if self.auth.header else {}

    def refused(self, response: Response, what: str) -> RegistryError:
        return RegistryError(
            f"{self.where}: {what}: HTTP {response.status}{_error_codes(response.data)}",
            registry=self.registry,
            repository=self.repository,
            url=response.url,
            status=response.status,
        )

    def _authenticate(self, challenge: str, scope: str) -> None:
        plan = self.auth.plan(challenge, scope)
        if plan is None:
            return  # Basic: the header is set
        realm = urlsplit(plan.url)
        if realm.scheme == "http" and not plain_http_allowed(
            realm.netloc, self.settings.insecure_registries
        ):
            raise self.auth.error(f"its token server {realm.netloc} is plain http")
        headers = {"Authorization": plan.authorization} if plan.authorization else {}
        try:
            answer = self._send("GET", plan.url, headers, None, MAX_TOKEN_BYTES)
        except _Unreachable as exc:
            why = f"its token server {realm.netloc} is unreachable: {exc}"
            raise self.auth.error(why) from None
        if answer.status in (401, 403):
            whom = "the credentials" if plan.authorization else "anonymous access"
            raise self.auth.error(
                f"its token server refused {whom} (HTTP {answer.status})", answer.status
            )
        if answer.status != 200:
            raise self.auth.error(f"its token server answered HTTP {answer.status}", answer.status)
        self.auth.adopt(answer.data)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        max_bytes: int,
        probe: bool = False,
    ) -> Response:
        """One request, retried on transient failures; a ``probe`` is not retried and raises
        _Unreachable, for the caller to try another scheme."""
        policy = self.settings.retry
        failures = 0
        while True:
            try:
                response = self._once(method, url, headers, body, max_bytes)
            except _Unreachable as exc:
                if probe:
                    raise
                failures += 1
                if failures > policy.total:
                    raise RegistryError(
                        f"{self.where}: {method} {url}: {exc}; gave up after {failures} attempts",
                        registry=self.registry,
                        repository=self.repository,
                        url=url,
                    ) from None
                time.sleep(policy.delay(failures))
                continue
            retryable = retry.is_retryable_status(response.status)
            if not retryable or probe or failures >= policy.total:
                return response
            failures += 1
            wait = retry.parse_retry_after(response.headers.get("Retry-After"))
            log.debug("%s %s: HTTP %s, retrying", method, url, response.status)
            time.sleep(policy.delay(failures, wait))

    def _once(
        self, method: str, url: str, headers: Mapping[str, str], body: Body, max_bytes: int
    ) -> Response:
        try:
            if method in ("GET", "HEAD"):
                opened = open_url(
                    url,
                    headers,
                    timeout=self._timeout,
                    ca_bundle=self.settings.ca_bundle,
                    method=method,
                )
                final, response = opened.url, opened.response
            else:
                send = {"User-Agent": USER_AGENT, **headers}
                payload = body() if callable(body) else body
                response = pool_for(url, self.settings.ca_bundle).urlopen(
                    method,
                    url,
                    body=payload,
                    headers=send,
                    redirect=False,
                    retries=False,
                    timeout=self._timeout,
                    preload_content=False,
                )
                final = url
        except SSLError as exc:
            raise _Unreachable(f"TLS error: {exc}") from None
        except DownloadError:
            raise
        except (HTTPError, OSError) as exc:
            raise _Unreachable(f"{type(exc).__name__}: {exc}") from None
        data = b""
        try:
            if method != "HEAD":
                data = response.read(max_bytes + 1)
        except (HTTPError, OSError) as exc:
            response.close()  # a half-read connection must not go back into the pool
            response.release_conn()
            raise _Unreachable(f"connection lost reading the answer: {exc}") from None
        if len(data) > max_bytes:
            response.close()  # the rest is unread: neither may this one
        response.release_conn()
        log.debug("%s %s -> %s", method, final, response.status)
        if len(data) > max_bytes:
            raise RegistryError(
                f"{self.where}: the answer to {method} {final} is larger than {max_bytes} bytes",
                registry=self.registry,
                repository=self.repository,
                url=final,
            )
        return Response(response.status, response.headers, data, final)


def _error_codes(data: bytes) -> str:
    """`` (CODE: message; ...)`` from a distribution error body, '' when there is none."""
    try:
        document = json.loads(data.decode("utf-8")) if data else None
    except (UnicodeDecodeError, ValueError):
        return ""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for entry in errors[:4]:
        if isinstance(entry, dict):
            code, message = str(entry.get("code", "")), str(entry.get("message", ""))
            parts.append(": ".join(p for p in (code, message) if p)[:200])
    return f" ({'; '.join(parts)})" if parts else ""
