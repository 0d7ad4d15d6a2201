"""Against a real docker-registry (anonymous, plain http on 127.0.0.1): containerDisk images and
a multi-arch index pushed with skopeo, artifacts pushed with push_file, pulls resumed after a
kill, moved tags, missing platforms, corrupt blobs, and a registry used as a mirror."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, NamedTuple

import pytest
from conftest import require_tool
from registry import (
    LAYER_GZIP,
    LAYER_TAR,
    OciLayout,
    RegistryServer,
    artifact_manifest,
    containerdisk_layer,
    skopeo_copy,
)

from pyimagecache.errors import ChecksumMismatchError, NoMatchingPlatformError, RegistryError
from pyimagecache.hashing import Expected
from pyimagecache.oci import blob_source_for, fetch_disk, push_file, resolve
from pyimagecache.oci import push as push_module
from pyimagecache.oci.layout import ARTIFACT, BLOB, CONTAINERDISK
from pyimagecache.oci.pull import layer_path
from pyimagecache.settings import Settings

pytestmark = pytest.mark.slow

FAST = Settings(retry=0, timeout=10)
REPO = Path(__file__).resolve().parent.parent


class Fixtures(NamedTuple):
    registry: RegistryServer
    work: Path
    qcow2: bytes  # disk/disk.qcow2 of the containerdisk:qcow2 image
    raw: bytes  # disk/disk.raw of containerdisk:raw
    per_arch: Dict[str, bytes]  # the disk of each arch of multi:1


def _raw_disk(size: int, seed: int) -> bytes:
    """A raw disk: a few data blocks in a mostly empty image."""
    data = bytearray(size)
    for i in range(0, size, size // 8):
        data[i : i + 4096] = hashlib.sha256(f"{seed}-{i}".encode()).digest() * 128
    return bytes(data)


def _random_file(directory: Path, size: int, name: str = "d.img") -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


def _qcow2(work: Path, raw: bytes) -> bytes:
    qemu_img = require_tool("qemu-img")
    (work / "src.raw").write_bytes(raw)
    subprocess.run(
        [
            qemu_img,
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            str(work / "src.raw"),
            str(work / "disk.qcow2"),
        ],
        check=True,
        capture_output=True,
    )
    return (work / "disk.qcow2").read_bytes()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixtures]:
    work = tmp_path_factory.mktemp("oci")
    with RegistryServer(work / "registry") as reg:
        layout = OciLayout(work / "layout")
        qcow2 = _qcow2(work, _raw_disk(4 << 20, 1))
        raw = _raw_disk(2 << 20, 2)
        layout.tag(
            "qcow2", layout.image([(containerdisk_layer({"disk/disk.qcow2": qcow2}), LAYER_GZIP)])
        )
        layout.tag(
            "raw",
            layout.image(
                [(containerdisk_layer({"disk/disk.raw": raw}, compress=False), LAYER_TAR)]
            ),
        )
        per_arch = {"amd64": _raw_disk(1 << 20, 3), "arm64": _raw_disk(1 << 20, 4)}
        layout.tag(
            "multi",
            layout.index(
                [
                    layout.image(
                        [(containerdisk_layer({"disk/d.img": per_arch["amd64"]}), LAYER_GZIP)]
                    ),
                    layout.image(
                        [(containerdisk_layer({"disk/d.img": per_arch["arm64"]}), LAYER_GZIP)],
                        arch="arm64",
                        variant="v8",
                    ),
                ]
            ),
        )
        dest = f"docker://{reg.address}/containerdisks"
        plain = "--dest-tls-verify=false"
        skopeo_copy(f"oci:{layout.root}:qcow2", f"{dest}/qcow2:1", work, plain)
        skopeo_copy(
            f"oci:{layout.root}:qcow2", f"{dest}/qcow2:docker", work, plain, "--format", "v2s2"
        )
        skopeo_copy(f"oci:{layout.root}:raw", f"{dest}/raw:1", work, plain, "--preserve-digests")
        skopeo_copy(f"oci:{layout.root}:multi", f"{dest}/multi:1", work, plain, "--all")
        yield Fixtures(reg, work, qcow2, raw, per_arch)


def test_containerdisk_with_qcow2_in_a_gzip_layer(fixtures: Fixtures, tmp_path: Path) -> None:
    resolved = resolve(fixtures.registry.ref("containerdisks/qcow2:1"), "amd64", FAST)
    assert resolved.layout == CONTAINERDISK and resolved.extract == "tar"
    assert resolved.blob.media_type == LAYER_GZIP
    assert resolved.manifest_digest is not None and resolved.manifest_digest.startswith("sha256:")
    out = fetch_disk(resolved, tmp_path / "disk.img", FAST)
    assert out.read_bytes() == fixtures.qcow2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.img"]


def test_containerdisk_as_docker_schema2(fixtures: Fixtures, tmp_path: Path) -> None:
    resolved = resolve(fixtures.registry.ref("containerdisks/qcow2:docker"), "amd64", FAST)
    assert resolved.blob.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert resolved.layout == CONTAINERDISK
    fetch_disk(resolved, tmp_path / "disk.img", FAST)
    assert (tmp_path / "disk.img").read_bytes() == fixtures.qcow2


def test_containerdisk_with_raw_in_a_plain_tar_is_written_sparsely(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    resolved = resolve(fixtures.registry.ref("containerdisks/raw:1"), "amd64", FAST)
    assert resolved.blob.media_type == LAYER_TAR
    sha = hashlib.sha256(fixtures.raw).hexdigest()
    out = fetch_disk(resolved, tmp_path / "disk.raw", FAST, expected=Expected(sha256=sha))
    assert out.read_bytes() == fixtures.raw
    assert out.stat().st_blocks * 512 < len(fixtures.raw) // 2
    assert not layer_path(out).exists()


def test_a_pin_the_extracted_disk_does_not_match(fixtures: Fixtures, tmp_path: Path) -> None:
    resolved = resolve(fixtures.registry.ref("containerdisks/raw:1"), "amd64", FAST)
    with pytest.raises(ChecksumMismatchError, match="disk/ of"):
        fetch_disk(resolved, tmp_path / "disk.raw", FAST, expected=Expected(sha256="0" * 64))
    assert not (tmp_path / "disk.raw").exists() and not layer_path(tmp_path / "disk.raw").exists()


def test_multi_arch_index_picks_our_platform(fixtures: Fixtures, tmp_path: Path) -> None:
    ref = fixtures.registry.ref("containerdisks/multi:1")
    seen = {}
    for arch in ("amd64", "arm64"):
        resolved = resolve(ref, arch, FAST)
        assert resolved.index_digest is not None
        assert resolved.platform is not None and resolved.platform.architecture == arch
        fetch_disk(resolved, tmp_path / arch, FAST)
        assert (tmp_path / arch).read_bytes() == fixtures.per_arch[arch]
        seen[arch] = resolved.manifest_digest
    assert seen["amd64"] != seen["arm64"]
    # x86_64 / aarch64 (platform.machine() spellings) mean the same
    assert resolve(ref, "aarch64", FAST).manifest_digest == seen["arm64"]


def test_no_manifest_for_our_arch_names_the_platforms(fixtures: Fixtures) -> None:
    with pytest.raises(NoMatchingPlatformError) as info:
        resolve(fixtures.registry.ref("containerdisks/multi:1"), "s390x", FAST)
    message = str(info.value)
    assert "linux/s390x" in message
    assert "linux/amd64" in message and "linux/arm64/v8" in message
    assert info.value.platforms == ("linux/amd64", "linux/arm64/v8")


def test_a_single_arch_image_for_another_arch(fixtures: Fixtures) -> None:
    ref = fixtures.registry.ref("containerdisks/qcow2:1")
    assert resolve(ref, "amd64", FAST).platform == ("amd64", "linux", "")
    with pytest.raises(
        NoMatchingPlatformError, match="is an image for linux/amd64, not linux/arm64"
    ):
        resolve(ref, "arm64", FAST)


def test_resolving_by_digest_and_a_missing_tag(fixtures: Fixtures) -> None:
    by_tag = resolve(fixtures.registry.ref("containerdisks/qcow2:1"), "amd64", FAST)
    by_digest = resolve(
        fixtures.registry.ref(f"containerdisks/qcow2@{by_tag.manifest_digest}"), "amd64", FAST
    )
    assert by_digest.blob == by_tag.blob
    with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN") as info:
        resolve(fixtures.registry.ref("containerdisks/qcow2:nope"), "amd64", FAST)
    assert info.value.status == 404


def test_a_moved_tag_resolves_to_another_manifest_digest(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    ref = fixtures.registry.ref("moving/disk:stable")
    first, second = _random_file(tmp_path, 4096, "one"), _random_file(tmp_path, 4096, "two")
    pushed = push_file(first, ref, settings=FAST)
    before = resolve(ref, "amd64", FAST)
    assert before.manifest_digest == pushed
    push_file(second, ref, settings=FAST)
    after = resolve(ref, "amd64", FAST)
    assert after.manifest_digest != before.manifest_digest
    assert after.blob.digest != before.blob.digest


def test_push_file_round_trip_and_mirror_lookup(fixtures: Fixtures, tmp_path: Path) -> None:
    reg = fixtures.registry
    src = tmp_path / "debian-12.qcow2"
    src.write_bytes(os.urandom(300_000))
    sha256 = hashlib.sha256(src.read_bytes()).hexdigest()
    annotations = {"org.pyimagecache.alias": "debian-12", "org.pyimagecache.sha256": sha256}
    digest = push_file(
        src, reg.ref("mirror"), tag="debian-12-1-amd64", annotations=annotations, settings=FAST
    )
    resolved = resolve(reg.ref("mirror:debian-12-1-amd64"), "amd64", FAST)
    assert resolved.manifest_digest == digest
    assert resolved.layout == ARTIFACT and resolved.title == "debian-12.qcow2"
    assert resolved.artifact_type == "application/vnd.pyimagecache.disk.v1"
    assert resolved.blob.media_type == "application/octet-stream"
    assert resolved.annotations == annotations and resolved.sha256 == sha256
    fetch_disk(resolved, tmp_path / "out", FAST, expected=Expected(sha256=sha256))
    assert (tmp_path / "out").read_bytes() == src.read_bytes()

    base = f"oci://{reg.address}/mirror"
    found = blob_source_for(base, sha256, settings=FAST)
    assert found is not None and found.layout == BLOB and found.manifest_digest is None
    assert found.blob.digest == f"sha256:{sha256}" and found.blob.size == 300_000
    fetch_disk(found, tmp_path / "via-mirror", FAST)
    assert (tmp_path / "via-mirror").read_bytes() == src.read_bytes()
    assert blob_source_for(base, "0" * 64, settings=FAST) is None
    assert blob_source_for(base, "0" * 64, "no-such-tag", settings=FAST) is None
    # A SHA-512-only pin is found by its tag; a tag holding another file is not it.
    by_tag = blob_source_for(base, None, "debian-12-1-amd64", settings=FAST, sha512="ab" * 64)
    assert by_tag is not None and by_tag.manifest_digest == digest
    assert blob_source_for(base, "1" * 64, "debian-12-1-amd64", settings=FAST) is None
    with pytest.raises(RegistryError, match="not the pinned sha256"):
        fetch_disk(resolved, tmp_path / "x", FAST, expected=Expected(sha256="1" * 64))


def test_pushing_again_skips_the_blob_and_gives_the_same_digest(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    reg = fixtures.registry
    src = _random_file(tmp_path, 50_000)
    first = push_file(src, reg.ref("again"), tag="t", settings=FAST)
    uploads = len([e for e in reg.access_log() if e[0] == "PUT" and "/blobs/uploads/" in e[1]])
    assert push_file(src, reg.ref("again"), tag="t", settings=FAST) == first
    after = len([e for e in reg.access_log() if e[0] == "PUT" and "/blobs/uploads/" in e[1]])
    assert after == uploads


def test_chunked_upload(
    fixtures: Fixtures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = fixtures.registry
    monkeypatch.setattr(push_module, "MONOLITHIC_MAX", 100_000)
    monkeypatch.setattr(push_module, "CHUNK", 64 << 10)
    src = _random_file(tmp_path, 300_000)
    seen = []
    push_file(
        src,
        reg.ref("chunked"),
        tag="t",
        settings=FAST,
        progress=lambda done, total: seen.append((done, total)),
    )
    patches = [e for e in reg.access_log() if e[0] == "PATCH" and "/chunked/" in e[1]]
    assert len(patches) == 5  # 4 x 64 KiB + the rest
    assert seen[-1] == (300_000, 300_000)
    resolved = resolve(reg.ref("chunked:t"), "amd64", FAST)
    fetch_disk(resolved, tmp_path / "out", FAST)
    assert (tmp_path / "out").read_bytes() == src.read_bytes()


def test_a_corrupt_blob_in_the_registry_never_reaches_dest(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    reg = fixtures.registry
    push_file(_random_file(tmp_path, 10_000), reg.ref("corrupt"), tag="t", settings=FAST)
    resolved = resolve(reg.ref("corrupt:t"), "amd64", FAST)
    stored = reg.blob_path(resolved.blob.digest)
    data = bytearray(stored.read_bytes())
    data[5000] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError):
        fetch_disk(resolved, tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists()


_CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pyimagecache.oci import fetch_disk, resolve
    from pyimagecache.settings import Settings

    def progress(done, total):
        if done == 0:
            time.sleep(0.3)  # let bytes pile up, so the next report lands mid-blob
        elif done < total:
            os.kill(os.getpid(), signal.SIGKILL)

    settings = Settings(retry=0)
    fetch_disk(resolve(sys.argv[1], "amd64", settings), sys.argv[2], settings, progress)
""")


def test_a_pull_killed_mid_blob_resumes_with_a_range_request(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    reg = fixtures.registry
    src = _random_file(tmp_path, 48 << 20)
    push_file(src, reg.ref("resume"), tag="t", settings=FAST)
    ref = reg.ref("resume:t")
    dest = tmp_path / "out.img"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, ref, str(dest)], cwd=REPO, capture_output=True, timeout=120
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    part = dest.with_name(dest.name + ".part")
    kept = part.stat().st_size
    assert 0 < kept < src.stat().st_size
    fetch_disk(resolve(ref, "amd64", FAST), dest, FAST)
    assert dest.read_bytes() == src.read_bytes()
    # The killed child's 200 (logged when the registry noticed, in any order) and one 206.
    gets = [e for e in reg.access_log() if e[0] == "GET" and "/resume/blobs/" in e[1]]
    assert sorted(e[2] for e in gets) == [200, 206]
    assert [e[3] for e in gets if e[2] == 206] == [src.stat().st_size - kept]


def test_manifest_digest_and_layer_of_an_image_with_annotations(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    """A hand-made manifest PUT raw: what resolve reads is exactly what was stored."""
    reg = fixtures.registry
    push_file(_random_file(tmp_path, 4096), reg.ref("raw-manifest"), tag="base", settings=FAST)
    resolved = resolve(reg.ref("raw-manifest:base"), "amd64", FAST)
    layer = {
        "mediaType": "application/x-qemu-disk",
        "digest": resolved.blob.digest,
        "size": 4096,
        "annotations": {"org.opencontainers.image.title": "x.raw"},
    }
    body = artifact_manifest(layer, annotations={"note": "hand made"}, indent=3)
    from pyimagecache.oci.push import put_manifest
    from pyimagecache.oci.reference import parse_reference
    from pyimagecache.oci.transport import Registry

    ref = parse_reference(reg.ref("raw-manifest:hand"))
    digest = put_manifest(Registry(ref.registry, ref.repository, FAST), ref, body)
    again = resolve(reg.ref("raw-manifest:hand"), "amd64", FAST)
    assert again.manifest_digest == digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert again.title == "x.raw" and again.annotations == {"note": "hand made"}
