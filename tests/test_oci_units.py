"""The OCI client's decisions, without servers: references, auth files, challenges, which
scheme a registry may be reached over, which index entry and which layer is the disk."""

from __future__ import annotations

import base64
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

from pyimagecache.errors import (
    ContainerError,
    ExternalReferenceError,
    InvalidReferenceError,
    NoMatchingPlatformError,
    RegistryAuthError,
    RegistryError,
    UnsupportedArchError,
)
from pyimagecache.oci import parse_reference
from pyimagecache.oci.auth import Authenticator, parse_challenges
from pyimagecache.oci.credentials import Credentials, find_credentials
from pyimagecache.oci.layout import (
    ARTIFACT,
    CONTAINERDISK,
    CONTAINERDISK_MEMBER,
    TAR,
    disk_of,
    is_tar_layer,
)
from pyimagecache.oci.manifest import OCI_MANIFEST, Manifest, choose
from pyimagecache.oci.platforms import Platform, matches
from pyimagecache.oci.reference import Reference, parse_repository
from pyimagecache.oci.transport import is_loopback, plain_http_allowed, schemes_for
from pyimagecache.settings import Settings
from pyimagecache.unpack import unpack

HEX = "ab" * 32

# -- references -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci://127.0.0.1:5000/disks/debian:12", ("127.0.0.1:5000", "disks/debian", "12", None)),
        (f"oci://reg.example/a/b@sha256:{HEX}", ("reg.example", "a/b", None, f"sha256:{HEX}")),
        (f"docker://quay.io/x/y:t@sha256:{HEX}", ("quay.io", "x/y", "t", f"sha256:{HEX}")),
        ("docker://ubuntu", ("registry-1.docker.io", "library/ubuntu", None, None)),
        (
            "docker://docker.io/ubuntu:24.04",
            ("registry-1.docker.io", "library/ubuntu", "24.04", None),
        ),
        ("oci://index.docker.io/org/img", ("registry-1.docker.io", "org/img", None, None)),
        ("docker://user/img:1", ("registry-1.docker.io", "user/img", "1", None)),
        ("oci://localhost/img", ("localhost", "img", None, None)),
        ("oci://[::1]:5000/img:v1", ("[::1]:5000", "img", "v1", None)),
        (
            "OCI://Reg.Example:443/a__b/c-d.e:TAG_1",
            ("reg.example:443", "a__b/c-d.e", "TAG_1", None),
        ),
    ],
)
def test_references_parse_as_docker_and_skopeo_read_them(text: str, expected: tuple) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


def test_reference_target_and_round_trip() -> None:
    ref = parse_reference("oci://reg.example/a/b")
    assert ref.target == "latest"
    assert str(ref.with_tag("v2")) == "oci://reg.example/a/b:v2"
    pinned = ref.with_digest(f"sha256:{HEX}")
    assert pinned.target == f"sha256:{HEX}"
    assert parse_reference(str(pinned)) == pinned


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("https://reg.example/a", "not an image reference"),
        ("reg.example/a:1", "not an image reference"),
        ("oci://", "nothing after"),
        ("oci://reg.example/", "names no repository"),
        ("oci://reg.example/UPPER", "repository component 'UPPER'"),
        ("oci://reg.example/a//b", "repository component ''"),
        ("oci://reg.example/a:-bad", "tag '-bad'"),
        ("oci://reg.example/a:" + "t" * 129, "tag"),
        ("oci://reg.example/a@sha256:abc", "is not a digest"),
        ("oci://reg.example/a@md5:" + "0" * 32, "is not a digest"),
        ("oci://bad_host.example/a", "not a registry host"),
        ("oci://reg.example/" + "a" * 260, "longer than 255"),
    ],
)
def test_malformed_references_are_clear_errors(text: str, says: str) -> None:
    with pytest.raises(InvalidReferenceError, match=None) as info:
        parse_reference(text)
    assert says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_repository_base_has_no_tag() -> None:
    assert parse_repository("oci://reg.example/mirror") == Reference("reg.example", "mirror")
    with pytest.raises(InvalidReferenceError, match="without a tag"):
        parse_repository("oci://reg.example/mirror:latest")
    with pytest.raises(InvalidReferenceError, match="valid tag"):
        Reference("reg.example", "m").with_tag("no/slash")


# -- which scheme ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "registry", ["localhost:5000", "127.0.0.1:5000", "127.0.0.2", "127.255.0.1:1", "[::1]:5000"]
)
def test_loopback_registries_may_fall_back_to_http(registry: str) -> None:
    assert is_loopback(registry)
    assert schemes_for(registry, Settings()) == ("https", "http")


@pytest.mark.parametrize("registry", ["10.0.0.5:5000", "reg.example", "192.168.1.2:80", "[::2]:1"])
def test_other_registries_are_https_only_unless_listed(registry: str) -> None:
    assert not is_loopback(registry)
    assert schemes_for(registry, Settings()) == ("https",)
    assert not plain_http_allowed(registry, ())
    listed = Settings(insecure_registries=[registry.upper()])
    assert schemes_for(registry, listed) == ("https", "http")
    other = Settings(insecure_registries=["10.0.0.5:5001"])
    assert schemes_for(registry, other) == ("https",)


def test_insecure_registries_come_from_the_environment() -> None:
    env = {"PYIMAGECACHE_INSECURE_REGISTRIES": "10.0.0.5:5000 reg.lan:80"}
    settings = Settings.from_environment(env)
    assert schemes_for("10.0.0.5:5000", settings) == ("https", "http")
    assert schemes_for("10.0.0.5:5001", settings) == ("https",)


# -- credentials ----------------------------------------------------------------------------


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _env(tmp_path: Path, **files: Dict[str, Any]) -> Dict[str, str]:
    """Auth files under tmp_path: registry_auth, xdg, docker (those given)."""
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    places = {
        "registry_auth": tmp_path / "auth.json",
        "xdg": tmp_path / "run" / "containers" / "auth.json",
        "docker": tmp_path / "home" / ".docker" / "config.json",
    }
    for name, document in files.items():
        places[name].parent.mkdir(parents=True, exist_ok=True)
        places[name].write_text(json.dumps(document))
    if "registry_auth" in files:
        env["REGISTRY_AUTH_FILE"] = str(places["registry_auth"])
    return env


def test_the_first_file_with_an_entry_wins(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        registry_auth={"auths": {"other.example": {"auth": _auth("o", "p")}}},
        xdg={"auths": {"reg.example": {"auth": _auth("xdg", "pw1")}}},
        docker={"auths": {"reg.example": {"auth": _auth("docker", "pw2")}}},
    )
    found = find_credentials("reg.example", "a/b", env)
    assert found is not None and (found.username, found.password) == ("xdg", "pw1")
    assert found.source.endswith("containers/auth.json")
    assert find_credentials("nowhere.example", "", env) is None


def test_username_password_fields_and_docker_login_keys(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        docker={
            "auths": {
                "https://index.docker.io/v1/": {"auth": _auth("hub", "pw")},
                "https://Reg.Example:5000/": {"username": "u", "password": "p"},
            }
        },
    )
    hub = find_credentials("registry-1.docker.io", "library/ubuntu", env)
    assert hub is not None and hub.username == "hub"
    plain = find_credentials("reg.example:5000", "x", env)
    assert plain is not None and (plain.username, plain.password) == ("u", "p")


def test_the_most_specific_namespace_wins(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        registry_auth={
            "auths": {
                "reg.example": {"auth": _auth("host", "1")},
                "reg.example/team": {"auth": _auth("team", "2")},
                "reg.example/team/app": {"auth": _auth("app", "3")},
            }
        },
    )
    assert find_credentials("reg.example", "team/app", env).username == "app"  # type: ignore[union-attr]
    assert find_credentials("reg.example", "team/lib", env).username == "team"  # type: ignore[union-attr]
    assert find_credentials("reg.example", "other", env).username == "host"  # type: ignore[union-attr]


def test_credential_helpers_are_a_clear_error(tmp_path: Path) -> None:
    env = _env(tmp_path, docker={"credHelpers": {"reg.example": "ecr-login"}})
    with pytest.raises(RegistryAuthError) as info:
        find_credentials("reg.example", "x", env)
    message = str(info.value)
    assert "credential helpers are not supported" in message
    assert "REGISTRY_AUTH_FILE" in message and "ecr-login" in message
    # A store holding the entry (docker login leaves {} in auths) is the same error ...
    env = _env(tmp_path, docker={"credsStore": "desktop", "auths": {"reg.example": {}}})
    with pytest.raises(RegistryAuthError, match="credential helpers are not supported"):
        find_credentials("reg.example", "x", env)
    # ... but a store set globally does not stop anonymous access to other registries.
    assert find_credentials("127.0.0.1:5000", "x", env) is None


def test_malformed_auth_files_name_the_file_not_the_secret(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"reg.example": {"auth": "hunter2-not-base64!"}}}')
    env = {"REGISTRY_AUTH_FILE": str(auth), "HOME": str(tmp_path)}
    with pytest.raises(RegistryAuthError) as info:
        find_credentials("reg.example", "", env)
    assert str(auth) in str(info.value) and "hunter2" not in str(info.value)
    auth.write_text('{"auths": {"reg.example": {"auth": "hunter2"')
    with pytest.raises(RegistryAuthError, match="not valid JSON") as info:
        find_credentials("reg.example", "", env)
    assert "hunter2" not in str(info.value)


def test_credentials_never_show_the_password() -> None:
    creds = Credentials("alice", "s3cret-pw", "/x/auth.json")
    assert "s3cret" not in repr(creds) and "s3cret" not in str(creds)
    assert creds.basic() == "Basic " + _auth("alice", "s3cret-pw")


# -- challenges -----------------------------------------------------------------------------


def test_challenges_parse() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "reg.example",
        "scope": "repository:a/b:pull,push",
    }
    both = parse_challenges('Basic realm="x y", Bearer realm="https://a/t",error="invalid_token"')
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert both[0].params == {"realm": "x y"}
    assert parse_challenges("basic realm=plain") == [("basic", {"realm": "plain"})]
    assert parse_challenges('Bearer realm="a\\"b"')[0].params["realm"] == 'a"b'
    assert parse_challenges("") == []


def test_a_bearer_challenge_plans_a_token_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    auth = Authenticator("reg.example", "a/b")
    plan = auth.plan(
        'Bearer realm="https://auth.example/token?x=1",service="svc"', "repository:a/b:pull"
    )
    assert plan is not None and plan.authorization is None
    assert plan.url.startswith("https://auth.example/token?x=1&")
    assert "service=svc" in plan.url and "scope=repository%3Aa%2Fb%3Apull" in plan.url
    auth.adopt(b'{"access_token": "tok"}')
    assert auth.header == "Bearer tok"
    with pytest.raises(RegistryAuthError, match="without a token"):
        auth.adopt(b'{"nothing": 1}')
    with pytest.raises(RegistryAuthError, match="requires credentials"):
        auth.plan('Basic realm="r"', "")
    with pytest.raises(RegistryAuthError, match="scheme we do not speak"):
        auth.plan("Negotiate", "")


# -- platforms and layouts ------------------------------------------------------------------


def _manifest(document: Dict[str, Any], media_type: str = OCI_MANIFEST) -> Manifest:
    return Manifest(media_type, "sha256:" + "0" * 64, document)


def _desc(media_type: str, size: int = 10, n: int = 1, **extra: Any) -> Dict[str, Any]:
    return {"mediaType": media_type, "digest": f"sha256:{n:064x}", "size": size, **extra}


def test_platform_matching() -> None:
    assert matches(Platform("amd64", "linux"), "amd64")
    assert matches(Platform("x86_64", "linux"), "amd64")  # podman machine-os spelling
    assert matches(Platform("arm64", "linux", "v8"), "arm64")
    assert matches(Platform("aarch64", ""), "arm64")
    assert not matches(Platform("arm64", "linux", "v7"), "arm64")
    assert not matches(Platform("arm", "linux", "v7"), "arm64")
    assert not matches(Platform("amd64", "windows"), "amd64")
    assert not matches(None, "amd64")


def test_choose_prefers_podmans_qemu_disk_and_names_the_platforms_it_has() -> None:
    index = _manifest(
        {
            "manifests": [
                _desc(
                    OCI_MANIFEST,
                    n=1,
                    platform={"architecture": "amd64", "os": "linux"},
                    annotations={"disktype": "applehv"},
                ),
                _desc(
                    OCI_MANIFEST,
                    n=2,
                    platform={"architecture": "amd64", "os": "linux"},
                    annotations={"disktype": "qemu"},
                ),
                _desc(
                    OCI_MANIFEST,
                    n=3,
                    platform={"architecture": "arm64", "os": "linux", "variant": "v8"},
                ),
            ]
        }
    )

    class _Reg:
        registry, repository = "reg.example", "a"

    entries = index.descriptors("manifests")
    assert choose(entries, "amd64", "x", _Reg()).digest.endswith("2")  # type: ignore[arg-type]
    with pytest.raises(NoMatchingPlatformError) as info:
        choose(entries, "s390x", "oci://reg.example/a:1", _Reg())  # type: ignore[arg-type]
    assert "linux/amd64" in str(info.value) and "linux/arm64/v8" in str(info.value)
    assert info.value.platforms == ("linux/amd64", "linux/arm64/v8")
    assert isinstance(info.value, UnsupportedArchError) and isinstance(info.value, RegistryError)
    assert pickle.loads(pickle.dumps(info.value)).platforms == info.value.platforms


def test_layouts() -> None:
    config = _desc("application/vnd.oci.image.config.v1+json")
    small = _desc("application/vnd.oci.image.layer.v1.tar+gzip", size=100, n=2)
    big = _desc("application/vnd.docker.image.rootfs.diff.tar.gzip", size=9000, n=3)
    disk = disk_of(_manifest({"config": config, "layers": [small, big, small]}), "x")
    assert (disk.kind, disk.extract, disk.blob.size) == (CONTAINERDISK, TAR, 9000)
    artifact = _desc(
        "application/octet-stream", n=4, annotations={"org.opencontainers.image.title": "d.qcow2"}
    )
    empty = _desc("application/vnd.oci.empty.v1+json")
    disk = disk_of(
        _manifest(
            {
                "config": empty,
                "layers": [artifact],
                "artifactType": "application/vnd.pyimagecache.disk.v1",
            }
        ),
        "x",
    )
    assert (disk.kind, disk.extract, disk.title) == (ARTIFACT, "", "d.qcow2")
    # A one-layer tar *artifact* is the file itself, not a containerDisk.
    disk = disk_of(_manifest({"config": empty, "layers": [small]}), "x")
    assert disk.kind == ARTIFACT
    # An image whose single layer is no tar (podman machine-os style) is read as a disk.
    zst = _desc("application/zstd", n=5)
    assert disk_of(_manifest({"config": config, "layers": [zst]}), "x").kind == ARTIFACT
    with pytest.raises(RegistryError, match="neither a containerDisk"):
        disk_of(_manifest({"config": empty, "layers": [artifact, zst]}), "x")
    with pytest.raises(RegistryError, match="no layers"):
        disk_of(_manifest({"config": config, "layers": []}), "x")
    with pytest.raises(RegistryError, match=r"layers\[0\].digest"):
        disk_of(_manifest({"config": config, "layers": [{**small, "digest": "sha256:12"}]}), "x")
    assert is_tar_layer("application/vnd.oci.image.layer.v1.tar+zstd")
    assert not is_tar_layer("application/vnd.oci.image.layer.v1.tar+xz")


# -- the disk/ member of a containerDisk layer ----------------------------------------------


def _layer(tmp_path: Path, members: List[tarfile.TarInfo], data: Dict[str, bytes]) -> Path:
    out = tmp_path / "layer.tar"
    with tarfile.open(out, "w") as tar:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return out


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_the_disk_is_the_one_regular_file_under_disk(tmp_path: Path) -> None:
    disk = b"\x01" * 5000 + bytes(8192) + b"\x02"
    layer = _layer(
        tmp_path,
        [
            _member("etc/hostname"),
            _member("./disk", tarfile.DIRTYPE),
            _member("./disk/fedora.img"),
            _member("disk/.wh.old"),
        ],
        {"etc/hostname": b"x", "./disk/fedora.img": disk, "disk/.wh.old": b""},
    )
    out = tmp_path / "out.raw"
    assert unpack(layer, out, rule=CONTAINERDISK_MEMBER) == "raw"
    assert out.read_bytes() == disk


@pytest.mark.parametrize(
    ("member", "says"),
    [
        (_member("disk/link.img", tarfile.SYMTYPE, "/etc/shadow"), "symbolic link"),
        (_member("disk/hard.img", tarfile.LNKTYPE, "etc/passwd"), "hard link"),
        (_member("disk/dev", tarfile.BLKTYPE), "device or FIFO"),
        (_member("disk/fifo", tarfile.FIFOTYPE), "device or FIFO"),
        (_member("/disk/abs.img"), "leaves the archive"),
        (_member("disk/../../x.img"), "leaves the archive"),
        (_member("other/../disk/x.img"), "leaves the archive"),
    ],
)
def test_links_devices_and_escapes_refuse_the_layer(
    tmp_path: Path, member: tarfile.TarInfo, says: str
) -> None:
    layer = _layer(
        tmp_path,
        [_member("disk/", tarfile.DIRTYPE), member],
        {member.name: b"x"} if member.type == tarfile.REGTYPE else {},
    )
    with pytest.raises(ExternalReferenceError, match=says):
        unpack(layer, tmp_path / "out", rule=CONTAINERDISK_MEMBER)


def test_no_disk_or_two_disks_under_disk(tmp_path: Path) -> None:
    layer = _layer(
        tmp_path,
        [_member("disk/", tarfile.DIRTYPE), _member("boot/disk.img")],
        {"boot/disk.img": b"x"},
    )
    with pytest.raises(ContainerError, match="the one regular file under disk/"):
        unpack(layer, tmp_path / "out", rule=CONTAINERDISK_MEMBER)
    layer = _layer(
        tmp_path,
        [_member("disk/a.img"), _member("disk/b.img")],
        {"disk/a.img": b"a", "disk/b.img": b"b"},
    )
    with pytest.raises(ContainerError, match="more than one"):
        unpack(layer, tmp_path / "out", rule=CONTAINERDISK_MEMBER)


def test_a_rule_requires_a_tar(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "disk.raw.gz"
    src.write_bytes(gzip.compress(b"\x01" * 4096))
    assert unpack(src, tmp_path / "plain") == "raw"  # the default rule takes a bare stream
    with pytest.raises(ContainerError, match="not a tar archive"):
        unpack(src, tmp_path / "out", rule=CONTAINERDISK_MEMBER)
