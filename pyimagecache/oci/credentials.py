"""Registry credentials from the standard auth files, read the way podman and docker read them.

The files, in order: ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
``~/.docker/config.json``. The first file with an entry for the registry wins. An entry is
``auths`` -> key -> ``auth`` (base64 ``user:password``) or ``username`` + ``password``; a key
may be ``host[:port]``, ``https://host/v1/`` (docker login's spelling) or ``host/namespace``
(the most specific namespace of the repository wins). Credentials held by a helper program
(``credHelpers`` for the registry, or ``credsStore`` with an empty entry for it) are not read:
that is a :class:`~pyimagecache.errors.RegistryAuthError` saying so, rather than a silent
anonymous attempt.

The password never appears in a repr, a message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Tuple

from ..errors import RegistryAuthError
from .reference import DOCKER_HUB

_HUB_KEYS = ("docker.io", "index.docker.io", DOCKER_HUB)


@dataclass(frozen=True)
class Credentials:
    """A user and password for one registry; the password is left out of the repr."""

    username: str
    password: str = field(repr=False)
    source: str = ""  # the auth file they came from

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def auth_files(env: Optional[Mapping[str, str]] = None) -> List[Path]:
    """The files searched, in order (whether or not they exist)."""
    env = os.environ if env is None else env
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    home = env.get("HOME") or os.path.expanduser("~")
    files.append(Path(home) / ".docker" / "config.json")
    return files


def find_credentials(
    registry: str, repository: str = "", env: Optional[Mapping[str, str]] = None
) -> Optional[Credentials]:
    """Credentials for ``registry`` (and ``repository``, for namespaced keys), or None."""
    for path in auth_files(env):
        document = _read(path)
        if document is None:
            continue
        found = _from_document(document, registry, repository, path)
        if found is not None:
            return found
    return None


def _read(path: Path) -> Optional[Mapping[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryAuthError(f"cannot read the registry auth file {path}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        # The position only: the text around it could be a secret.
        raise RegistryAuthError(
            f"registry auth file {path} is not valid JSON (line {getattr(exc, 'lineno', '?')})"
        ) from None
    if not isinstance(document, dict):
        raise RegistryAuthError(f"registry auth file {path} is not a JSON object")
    return document


def _keys(registry: str, repository: str) -> Iterator[str]:
    """Keys that may hold credentials for the repository, most specific first."""
    hosts = _HUB_KEYS if registry in _HUB_KEYS else (registry,)
    parts = repository.split("/") if repository else []
    for n in range(len(parts), 0, -1):
        for host in hosts:
            yield f"{host}/{'/'.join(parts[:n])}"
    yield from hosts


def _normalise(key: str) -> str:
    """``https://Host:5000/v1/`` -> ``host:5000``; ``host/ns`` keeps its namespace."""
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    host, sep, namespace = text.partition("/")
    return host.lower() + sep + namespace


def _from_document(
    document: Mapping[str, Any], registry: str, repository: str, path: Path
) -> Optional[Credentials]:
    auths = document.get("auths")
    entries = {_normalise(k): v for k, v in auths.items()} if isinstance(auths, dict) else {}
    helpers = document.get("credHelpers")
    helpers = {_normalise(k): v for k, v in helpers.items()} if isinstance(helpers, dict) else {}
    store = document.get("credsStore")
    for key in _keys(registry, repository):
        if key in helpers:
            raise _helper_error(registry, path, f"credHelpers names {helpers[key]!r} for {key}")
        entry = entries.get(key)
        if entry is None:
            continue
        found = _from_entry(entry, key, path)
        if found is not None:
            return found
        if store:
            raise _helper_error(registry, path, f"credsStore {store!r} keeps the entry for {key}")
    return None


def _helper_error(registry: str, path: Path, why: str) -> RegistryAuthError:
    return RegistryAuthError(
        f"credentials for {registry} are kept by a credential helper ({why}, in {path}); "
        "credential helpers are not supported: put the credentials in REGISTRY_AUTH_FILE "
        '({"auths": {"' + registry + '": {"auth": "<base64 of user:password>"}}})',
        registry=registry,
    )


def _from_entry(entry: Any, key: str, path: Path) -> Optional[Credentials]:
    if not isinstance(entry, dict):
        raise RegistryAuthError(f"registry auth file {path}: the entry for {key} is not an object")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        user, password = _decode(auth, key, path)
        return Credentials(user, password, str(path))
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return Credentials(name, secret, str(path))
    return None


def _decode(auth: str, key: str, path: Path) -> Tuple[str, str]:
    try:
        text = base64.b64decode(auth.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise RegistryAuthError(
            f"registry auth file {path}: the auth of {key} is not base64 of user:password"
        )
    return user, password
