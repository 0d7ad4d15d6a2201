"""Authentication against real registries: htpasswd over TLS with a throwaway CA, and token
auth with a token server of our own (RS256 JWTs signed by the openssl CLI). Credentials come
from a REGISTRY_AUTH_FILE the test writes; no password or token may appear in any message,
log line or exception attribute."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, List, NamedTuple

import pytest
from registry import (
    Cert,
    RegistryServer,
    TokenServer,
    htpasswd_auth,
    htpasswd_file,
    issue_cert,
    make_ca,
    token_auth,
    write_auth_file,
)

from pyimagecache.errors import RegistryAuthError, RegistryError
from pyimagecache.oci import fetch_disk, push_file, resolve
from pyimagecache.oci.credentials import Credentials
from pyimagecache.settings import Settings

pytestmark = pytest.mark.slow

ALICE_PW = "correct-horse-battery-staple"
BOB_PW = "bob-token-server-pw-42"
FAST = Settings(retry=0, timeout=10)


def _walk(value: Any, seen: set, depth: int = 0) -> Iterator[str]:
    """Every string reachable from ``value``'s attributes (an exception and its causes)."""
    if depth > 6 or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (str, bytes)):
        yield value if isinstance(value, str) else value.decode("latin-1")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(k, seen, depth + 1)
            yield from _walk(v, seen, depth + 1)
        return
    if isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _walk(v, seen, depth + 1)
        return
    if isinstance(value, BaseException):
        yield str(value)
        yield repr(value)
        yield from _walk(value.args, seen, depth + 1)
        yield from _walk(value.__cause__, seen, depth + 1)
        yield from _walk(value.__context__, seen, depth + 1)
    if hasattr(value, "__dict__"):
        yield from _walk(vars(value), seen, depth + 1)


def assert_no_secret(exc: BaseException, log: str, secrets: Iterable[str]) -> None:
    texts = list(_walk(exc, set())) + [log]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret leaked into {text[:200]!r}"


def _secrets(password: str, user: str, tokens: Iterable[str] = ()) -> List[str]:
    import base64

    return [password, base64.b64encode(f"{user}:{password}".encode()).decode(), *tokens]


@pytest.fixture(autouse=True)
def _own_auth_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No auth file of the machine's is ever read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home))


def _disk(tmp_path: Path, name: str = "d.img", size: int = 70_000) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


# -- htpasswd over TLS ----------------------------------------------------------------------


class TlsRegistry(NamedTuple):
    registry: RegistryServer
    ca: Cert
    settings: Settings


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    work = tmp_path_factory.mktemp("tls")
    ca = make_ca(work)
    server = issue_cert(ca, work)
    users = htpasswd_file(work / "htpasswd", {"alice": ALICE_PW})
    reg = RegistryServer(work / "registry", tls=server, ca=ca.cert, auth=htpasswd_auth(users))
    with reg:
        yield TlsRegistry(reg, ca, FAST.replace(ca_bundle=str(ca.cert)))


def test_htpasswd_over_tls_with_an_auth_file(
    tls_registry: TlsRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = tls_registry.registry
    auth = write_auth_file(tmp_path / "auth.json", reg.address, "alice", ALICE_PW)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    src = _disk(tmp_path)
    digest = push_file(src, reg.ref("private/disk"), tag="v1", settings=tls_registry.settings)
    resolved = resolve(reg.ref("private/disk:v1"), "amd64", tls_registry.settings)
    assert resolved.manifest_digest == digest
    fetch_disk(resolved, tmp_path / "out", tls_registry.settings)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()


def test_the_ca_may_come_from_ssl_cert_file(
    tls_registry: TlsRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = tls_registry.registry
    monkeypatch.setenv(
        "REGISTRY_AUTH_FILE",
        str(write_auth_file(tmp_path / "a.json", reg.address, "alice", ALICE_PW)),
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca.cert))
    push_file(_disk(tmp_path), reg.ref("private/env"), tag="v1", settings=FAST)
    assert resolve(reg.ref("private/env:v1"), "amd64", FAST).layout == "artifact"


def test_an_untrusted_certificate_is_an_error_not_a_fallback_to_http(
    tls_registry: TlsRegistry,
) -> None:
    with pytest.raises(RegistryError) as info:
        resolve(tls_registry.registry.ref("private/disk:v1"), "amd64", FAST)
    message = str(info.value)
    assert "certificate verify failed" in message
    assert "not a registry API" in message  # the plain http attempt found the TLS port


def test_htpasswd_without_credentials(tls_registry: TlsRegistry) -> None:
    with pytest.raises(RegistryAuthError) as info:
        resolve(tls_registry.registry.ref("private/disk:v1"), "amd64", tls_registry.settings)
    assert "requires credentials" in str(info.value)
    assert "REGISTRY_AUTH_FILE" in str(info.value)
    assert info.value.registry == tls_registry.registry.address


def test_htpasswd_wrong_password_names_the_user_never_the_password(
    tls_registry: TlsRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = tls_registry.registry
    wrong = "wrong-password-9876"
    monkeypatch.setenv(
        "REGISTRY_AUTH_FILE", str(write_auth_file(tmp_path / "a.json", reg.address, "alice", wrong))
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RegistryAuthError) as info:
        resolve(reg.ref("private/disk:v1"), "amd64", tls_registry.settings)
    message = str(info.value)
    assert reg.address in message and "'alice'" in message and "rejected" in message
    assert info.value.status == 401
    assert_no_secret(info.value, caplog.text, _secrets(wrong, "alice"))


# -- token auth -----------------------------------------------------------------------------


class TokenRegistry(NamedTuple):
    registry: RegistryServer
    tokens: TokenServer


def _token_registry(work: Path, anonymous: tuple) -> Iterator[TokenRegistry]:
    work.mkdir(parents=True, exist_ok=True)
    with TokenServer(work, {"bob": BOB_PW}, anonymous=anonymous) as tokens:
        reg = RegistryServer(work / "registry", auth=token_auth(tokens.realm, tokens.cert))
        with reg:
            yield TokenRegistry(reg, tokens)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    yield from _token_registry(tmp_path_factory.mktemp("token"), ("pull",))


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    yield from _token_registry(tmp_path_factory.mktemp("private"), ())


def _as_bob(
    registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    password: str = BOB_PW,
) -> None:
    auth = write_auth_file(tmp_path / "bob.json", registry.address, "bob", password)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))


def test_token_auth_push_with_credentials_then_anonymous_pull(
    token_registry: TokenRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg, tokens = token_registry
    caplog.set_level(logging.DEBUG)
    _as_bob(reg, tmp_path, monkeypatch)
    src = _disk(tmp_path)
    digest = push_file(src, reg.ref("team/disk"), tag="v1", settings=FAST)
    assert ("repository:team/disk:pull,push", "bob", 200) in tokens.log
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    tokens.log.clear()
    resolved = resolve(reg.ref("team/disk:v1"), "amd64", FAST)
    assert resolved.manifest_digest == digest
    fetch_disk(resolved, tmp_path / "out", FAST)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert {(scope, user) for scope, user, _ in tokens.log} == {("repository:team/disk:pull", None)}
    assert all(token not in caplog.text for token in tokens.issued)
    assert BOB_PW not in caplog.text


def test_token_auth_push_without_credentials(token_registry: TokenRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryAuthError) as info:
        push_file(
            _disk(tmp_path), token_registry.registry.ref("team/anon"), tag="v1", settings=FAST
        )
    assert "requires credentials" in str(info.value)


def test_token_server_refusing_the_password(
    token_registry: TokenRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg, tokens = token_registry
    wrong = "not-bobs-password-123"
    _as_bob(reg, tmp_path, monkeypatch, wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RegistryAuthError) as info:
        push_file(_disk(tmp_path), reg.ref("team/wrong"), tag="v1", settings=FAST)
    message = str(info.value)
    assert reg.address in message and "'bob'" in message and "token server refused" in message
    assert_no_secret(info.value, caplog.text, _secrets(wrong, "bob", tokens.issued))


def test_private_registry_needs_credentials_to_pull(
    private_registry: TokenRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg, tokens = private_registry
    _as_bob(reg, tmp_path, monkeypatch)
    src = _disk(tmp_path)
    push_file(src, reg.ref("secret/disk"), tag="v1", settings=FAST)
    resolved = resolve(reg.ref("secret/disk:v1"), "amd64", FAST)
    caplog.set_level(logging.DEBUG)
    fetch_disk(resolved, tmp_path / "out", FAST)  # the blob GET carries the token
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert_no_secret(RegistryError("none"), caplog.text, _secrets(BOB_PW, "bob", tokens.issued))
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    with pytest.raises(RegistryAuthError, match="requires credentials for secret/disk"):
        resolve(reg.ref("secret/disk:v1"), "amd64", FAST)


def test_a_credential_helper_is_a_clear_error(
    token_registry: TokenRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = token_registry.registry
    config = tmp_path / "home" / ".docker" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"credHelpers": {reg.address: "secretservice"}}))
    with pytest.raises(RegistryAuthError) as info:
        push_file(_disk(tmp_path), reg.ref("team/helper"), tag="v1", settings=FAST)
    message = str(info.value)
    assert "credential helpers are not supported" in message
    assert "REGISTRY_AUTH_FILE" in message and str(config) in message


def test_credentials_repr_in_errors_and_logs_hides_the_password() -> None:
    creds = Credentials("carol", "pa55word-carol", "/tmp/a.json")
    assert "pa55word" not in f"{creds!r} {creds}"
