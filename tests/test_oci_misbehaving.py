"""A registry that lies or fails, played by http.server: manifests that do not match their
digest, that are too large or of an unknown kind, transient failures that are retried."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from registry import LocalServer, QuietHandler, artifact_manifest

from pyimagecache.errors import RegistryError
from pyimagecache.oci import resolve
from pyimagecache.oci.manifest import MAX_MANIFEST
from pyimagecache.settings import Retry, Settings

Route = Tuple[int, Dict[str, str], bytes]


class _Fake(LocalServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.routes: Dict[str, List[Route]] = {"/v2/": [(200, {}, b"{}")]}  # the last repeats
        self.seen: List[str] = []


class _Handler(QuietHandler):
    server: _Fake

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append(self.path)
        answers = self.server.routes.get(self.path, [(404, {}, b"")])
        status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
        self.reply(status, body, headers)


@pytest.fixture
def fake() -> Iterator[_Fake]:
    with _Fake() as server:
        yield server


FAST = Settings(retry=Retry(total=2, backoff_base=0.01, backoff_max=0.02), timeout=5)
MANIFEST = artifact_manifest(
    {"mediaType": "application/octet-stream", "digest": "sha256:" + "1" * 64, "size": 5}
)
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OCI = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}


def test_a_manifest_not_matching_the_registrys_digest(fake: _Fake) -> None:
    fake.routes["/v2/r/manifests/t"] = [
        (200, {**OCI, "Docker-Content-Digest": "sha256:" + "f" * 64}, MANIFEST)
    ]
    with pytest.raises(RegistryError, match="does not match its digest"):
        resolve(f"oci://{fake.address}/r:t", "amd64", FAST)


def test_a_manifest_not_matching_the_digest_asked_for(fake: _Fake) -> None:
    wanted = "sha256:" + "e" * 64
    fake.routes[f"/v2/r/manifests/{wanted}"] = [
        (200, {**OCI, "Docker-Content-Digest": wanted}, MANIFEST)
    ]
    with pytest.raises(RegistryError, match=f"expected {wanted}, got {DIGEST}"):
        resolve(f"oci://{fake.address}/r@{wanted}", "amd64", FAST)


def test_a_manifest_without_a_digest_header_is_named_by_its_bytes(fake: _Fake) -> None:
    fake.routes["/v2/r/manifests/t"] = [(200, OCI, MANIFEST)]
    assert resolve(f"oci://{fake.address}/r:t", "amd64", FAST).manifest_digest == DIGEST


def test_a_manifest_larger_than_the_cap(fake: _Fake) -> None:
    fake.routes["/v2/r/manifests/t"] = [(200, OCI, b" " * (MAX_MANIFEST + 1))]
    with pytest.raises(RegistryError, match=f"larger than {MAX_MANIFEST} bytes"):
        resolve(f"oci://{fake.address}/r:t", "amd64", FAST)


def test_schema1_and_other_kinds_are_refused(fake: _Fake) -> None:
    fake.routes["/v2/r/manifests/t"] = [
        (
            200,
            {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
            b'{"schemaVersion": 1, "fsLayers": []}',
        )
    ]
    with pytest.raises(RegistryError, match="manifest.v1\\+prettyjws; supported"):
        resolve(f"oci://{fake.address}/r:t", "amd64", FAST)


def test_transient_failures_are_retried(fake: _Fake) -> None:
    fake.routes["/v2/r/manifests/t"] = [
        (503, {"Retry-After": "0"}, b""),
        (429, {}, b""),
        (200, OCI, MANIFEST),
    ]
    assert resolve(f"oci://{fake.address}/r:t", "amd64", FAST).manifest_digest == DIGEST
    assert fake.seen.count("/v2/r/manifests/t") == 3


def test_a_registry_error_body_is_summarised(fake: _Fake) -> None:
    body = json.dumps(
        {
            "errors": [
                {
                    "code": "NAME_UNKNOWN",
                    "message": "repository name not known",
                    "detail": {"name": "r"},
                }
            ]
        }
    ).encode()
    fake.routes["/v2/r/manifests/t"] = [(404, {"Content-Type": "application/json"}, body)]
    with pytest.raises(RegistryError) as info:
        resolve(f"oci://{fake.address}/r:t", "amd64", FAST)
    assert "HTTP 404 (NAME_UNKNOWN: repository name not known)" in str(info.value)
    assert info.value.status == 404 and info.value.repository == "r"


def test_something_that_is_not_a_registry(fake: _Fake) -> None:
    fake.routes["/v2/"] = [(404, {}, b"")]
    with pytest.raises(RegistryError, match="not a registry API"):
        resolve(f"oci://{fake.address}/r:t", "amd64", FAST)


def test_a_token_refused_mid_download_is_renewed_and_the_download_completes(
    fake: _Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry import write_auth_file

    from pyimagecache.oci import fetch_disk
    from pyimagecache.oci.layout import AS_IS, BLOB
    from pyimagecache.oci.manifest import Descriptor
    from pyimagecache.oci.reference import Reference
    from pyimagecache.oci.resolver import Resolved

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    auth = write_auth_file(tmp_path / "auth.json", fake.address, "u", "p")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    data = b"disk bytes" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    basic = {"WWW-Authenticate": 'Basic realm="fake"'}
    fake.routes["/v2/"] = [(401, basic, b""), (200, {}, b"{}")]
    fake.routes[f"/v2/r/blobs/{digest}"] = [(401, basic, b""), (200, {}, data)]
    blob = Descriptor("application/octet-stream", digest, len(data), {})
    resolved = Resolved(Reference(fake.address, "r"), None, blob, BLOB, AS_IS)
    fetch_disk(resolved, tmp_path / "out", FAST)
    assert (tmp_path / "out").read_bytes() == data
    assert fake.seen.count(f"/v2/r/blobs/{digest}") == 2
