"""Answering a registry's ``WWW-Authenticate`` challenge (distribution's token auth spec).

``Bearer realm=...,service=...,scope=...``: GET the realm with ``service`` and ``scope``
(Basic credentials when we have some), and use the ``token`` (or OAuth2's ``access_token``) it
returns as ``Authorization: Bearer``. ``Basic realm=...``: send the credentials themselves.
The header last earned is sent with every request of one :class:`Authenticator`; a
request needing more (a push after a pull) is refused with a new challenge, and answered.

Secrets (passwords, tokens) go only into request headers: every message names the registry
and the user, nothing more.
"""

from __future__ import annotations

import json
import re
from typing import Dict, List, NamedTuple, Optional
from urllib.parse import urlencode, urlsplit

from ..errors import RegistryAuthError
from .credentials import Credentials, auth_files, find_credentials

#: Largest token response read (distribution's are ~1 KiB, Docker Hub's ~4 KiB).
MAX_TOKEN_BYTES = 1 << 20

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CHALLENGE = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')


class Challenge(NamedTuple):
    scheme: str  # lower case: "bearer", "basic"
    params: Dict[str, str]  # keys lower case


def parse_challenges(value: str) -> List[Challenge]:
    """The challenges in a ``WWW-Authenticate`` value (several may share one header).

    >>> parse_challenges('Bearer realm="https://a/token",service="reg",scope="repository:r:pull"')
    [Challenge(scheme='bearer', params={'realm': 'https://a/token', 'service': 'reg', \
'scope': 'repository:r:pull'})]
    """
    found: List[Challenge] = []
    pos = 0
    text = value or ""
    while pos < len(text):
        head = _CHALLENGE.match(text, pos)
        if head is None or _PARAM.match(text, pos):
            break  # not a scheme where one should be: stop at what was understood
        scheme, pos = head.group(1).lower(), head.end()
        params: Dict[str, str] = {}
        while True:
            param = _PARAM.match(text, pos)
            if param is None:
                break
            quoted, bare = param.group(2), param.group(3)
            raw = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            params[param.group(1).lower()] = raw
            pos = param.end()
        found.append(Challenge(scheme, params))
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    return found


class TokenRequest(NamedTuple):
    url: str  # the realm with service and scope: no secret in it
    authorization: Optional[str]  # Basic credentials for the token server, or None


class Authenticator:
    """What to send as ``Authorization`` to one registry, learnt from its challenges."""

    def __init__(self, registry: str, repository: str = "") -> None:
        self.registry = registry
        self._repository = repository
        self._credentials: Optional[Credentials] = None
        self._looked_up = False
        self.header: Optional[str] = None  # the Authorization header to send now

    @property
    def credentials(self) -> Optional[Credentials]:
        if not self._looked_up:
            self._credentials = find_credentials(self.registry, self._repository)
            self._looked_up = True
        return self._credentials

    def plan(self, www_authenticate: str, scope: str) -> Optional[TokenRequest]:
        """After a 401: set :attr:`header` for a Basic challenge and return None, or say
        which token to fetch for a Bearer one (then :meth:`adopt` its response)."""
        challenges = parse_challenges(www_authenticate)
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None:
            realm = bearer.params.get("realm", "")
            if urlsplit(realm).scheme not in ("http", "https") or not urlsplit(realm).hostname:
                raise self.error(f"its Bearer challenge has no usable realm ({realm!r})")
            wanted = bearer.params.get("scope") or scope
            query = {"client_id": "pyimagecache"}
            if bearer.params.get("service"):
                query["service"] = bearer.params["service"]
            if wanted:
                query["scope"] = wanted
            sep = "&" if urlsplit(realm).query else "?"
            creds = self.credentials
            return TokenRequest(
                realm + sep + urlencode(query), creds.basic() if creds is not None else None
            )
        if "basic" in by_scheme:
            if self.credentials is None:
                raise self.missing_credentials()
            self.header = self.credentials.basic()
            return None
        schemes = ", ".join(c.scheme for c in challenges) or "none"
        raise self.error(f"it asks for an authentication scheme we do not speak ({schemes})")

    def adopt(self, body: bytes) -> None:
        """The token server's answer to :meth:`plan`'s request."""
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            document = None
        token = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise self.error("its token server answered without a token")
        self.header = f"Bearer {token}"

    # -- errors: the registry and the user, never a secret ----------------------------------

    def who(self) -> str:
        creds = self.credentials
        return f"user {creds.username!r} (from {creds.source})" if creds else "anonymous access"

    def error(self, why: str, status: Optional[int] = None) -> RegistryAuthError:
        return RegistryAuthError(
            f"cannot authenticate to {self.registry} with {self.who()}: {why}",
            registry=self.registry,
            repository=self._repository or None,
            status=status,
        )

    def missing_credentials(self, status: Optional[int] = 401) -> RegistryAuthError:
        searched = ", ".join(str(p) for p in auth_files())
        return RegistryAuthError(
            f"{self.registry} requires credentials for {self._repository or 'this request'} "
            f"and none were found (searched {searched}); put them in REGISTRY_AUTH_FILE",
            registry=self.registry,
            repository=self._repository or None,
            status=status,
        )

    def rejected(self, status: int, actions: str) -> RegistryAuthError:
        """The registry still refuses after we authenticated."""
        if self.credentials is None:
            return self.missing_credentials(status)
        if status == 403:
            why = f"not allowed to {actions} {self._repository}"
        else:
            why = f"the credentials were rejected (HTTP {status})"
        return self.error(why, status)


def scope_for(repository: str, actions: str) -> str:
    """``repository:<repo>:<actions>``, the scope of a repository request."""
    return f"repository:{repository}:{actions}"
