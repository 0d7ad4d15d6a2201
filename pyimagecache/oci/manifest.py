"""Manifests and indexes: fetched with the Accept types we read, verified against their digest,
size-capped, parsed into descriptors, and an index followed to our platform's manifest.

The digest a manifest must have is the reference's when it names one, the index entry's when
it was reached through an index, and otherwise the registry's ``Docker-Content-Digest``: every
byte used afterwards (layer digests, the disk's) is thereby bound to what was asked for.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import NoMatchingPlatformError, RegistryError
from .platforms import Platform, matches
from .reference import check_digest
from .transport import Registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
IMAGE_CONFIGS = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
INDEXES = (OCI_INDEX, DOCKER_LIST)
#: The Accept header of a manifest GET: what this module reads.
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))

#: Largest manifest read (distribution's own limit is 4 MiB).
MAX_MANIFEST = 4 << 20
#: Indexes followed into indexes at most this deep.
MAX_DEPTH = 4
#: podman machine-os indexes offer one disk per hypervisor; we convert qemu's.
DISKTYPE = "disktype"
PREFERRED_DISKTYPE = "qemu"


class Descriptor(NamedTuple):
    media_type: str
    digest: str  # "sha256:<hex>"
    size: int
    annotations: Mapping[str, str]
    platform: Optional[Platform] = None
    artifact_type: Optional[str] = None

    @property
    def title(self) -> Optional[str]:
        return self.annotations.get("org.opencontainers.image.title")


class Manifest(NamedTuple):
    """A fetched, verified manifest or index."""

    media_type: str
    digest: str
    document: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES

    @property
    def annotations(self) -> Mapping[str, str]:
        return _annotations(self.document.get("annotations"), "annotations", self)

    @property
    def artifact_type(self) -> Optional[str]:
        value = self.document.get("artifactType")
        return value if isinstance(value, str) and value else None

    def descriptors(self, field: str) -> List[Descriptor]:
        """``manifests`` (of an index) or ``layers`` (of a manifest), validated."""
        items = self.document.get(field)
        if not isinstance(items, list):
            raise self.invalid(f"{field} is not a list")
        return [descriptor(item, f"{field}[{i}]", self) for i, item in enumerate(items)]

    @property
    def config(self) -> Descriptor:
        return descriptor(self.document.get("config"), "config", self)

    def invalid(self, why: str) -> RegistryError:
        return RegistryError(f"manifest {self.digest} is malformed: {why}")


def descriptor(item: Any, where: str, manifest: Manifest) -> Descriptor:
    if not isinstance(item, dict):
        raise manifest.invalid(f"{where} is not an object")
    media_type, digest, size = item.get("mediaType"), item.get("digest"), item.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise manifest.invalid(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise manifest.invalid(f"{where}.digest is missing")
    try:
        check_digest(digest, f"{where}.digest")
    except ValueError as exc:
        raise manifest.invalid(str(exc)) from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise manifest.invalid(f"{where}.size is not a byte count")
    artifact = item.get("artifactType")
    return Descriptor(
        media_type,
        digest,
        size,
        _annotations(item.get("annotations"), f"{where}.annotations", manifest),
        Platform.of(item.get("platform")),
        artifact if isinstance(artifact, str) and artifact else None,
    )


def _annotations(value: Any, where: str, manifest: Manifest) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise manifest.invalid(f"{where} is not an object of strings")
    return dict(value)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def fetch_manifest(
    registry: Registry, target: str, expected: Optional[str] = None, size: Optional[int] = None
) -> Manifest:
    """GET the manifest or index ``target`` (a tag or digest), verified: against ``expected``
    (an index entry's digest and ``size``), or the digest ``target`` is, or the registry's
    ``Docker-Content-Digest``."""
    response = registry.request(
        "GET",
        registry.api(f"manifests/{target}"),
        what=f"manifest {target}",
        headers={"Accept": ACCEPT},
        max_bytes=MAX_MANIFEST,
    )
    data = response.data
    claimed = response.headers.get("Docker-Content-Digest", "").strip() or None
    if expected is None and target.startswith(("sha256:", "sha512:")):
        expected = target
    wanted = expected or claimed
    algorithm = wanted.partition(":")[0] if wanted else "sha256"
    if algorithm not in ("sha256", "sha512"):
        raise registry_error(registry, f"manifest {target}: unsupported digest {wanted}")
    actual = digest_of(data, algorithm)
    if wanted is not None and actual != wanted:
        raise registry_error(
            registry,
            f"manifest {target} does not match its digest: expected {wanted}, got {actual}",
        )
    if size is not None and size != len(data):
        raise registry_error(
            registry, f"manifest {target} is {len(data)} bytes, its descriptor says {size}"
        )
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise registry_error(registry, f"manifest {target} is not JSON") from None
    if not isinstance(document, dict):
        raise registry_error(registry, f"manifest {target} is not a JSON object")
    media_type = _media_type(response.headers.get("Content-Type", ""), document)
    if media_type not in MANIFESTS + INDEXES:
        raise registry_error(
            registry,
            f"manifest {target} is {media_type or 'of no known type'}; supported: "
            + ", ".join(MANIFESTS + INDEXES),
        )
    return Manifest(media_type, actual, document)


def _media_type(content_type: str, document: Mapping[str, Any]) -> str:
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = content_type.split(";")[0].strip().lower()
    if header in MANIFESTS + INDEXES:
        return header
    # The OCI media type field is optional: tell them apart by shape.
    if isinstance(document.get("manifests"), list):
        return OCI_INDEX
    if isinstance(document.get("layers"), list):
        return OCI_MANIFEST
    return header


def registry_error(registry: Registry, message: str) -> RegistryError:
    return RegistryError(
        f"{registry.where}: {message}", registry=registry.registry, repository=registry.repository
    )


def for_platform(
    registry: Registry, manifest: Manifest, arch: str, label: str
) -> Tuple[Manifest, Optional[Descriptor]]:
    """``manifest`` itself when it is an image manifest, else the manifest of the index entry
    for ``arch`` (indexes in indexes followed); with the entry that led there."""
    entry: Optional[Descriptor] = None
    for _ in range(MAX_DEPTH):
        if not manifest.is_index:
            return manifest, entry
        entry = choose(manifest.descriptors("manifests"), arch, label, registry)
        manifest = fetch_manifest(registry, entry.digest, entry.digest, entry.size)
    raise registry_error(registry, f"{label}: indexes nested more than {MAX_DEPTH} deep")


def config_platform(registry: Registry, manifest: Manifest) -> Optional[Platform]:
    """The platform an image's config declares (None for an artifact's config, which says
    none), read from the config blob and verified against its digest."""
    config = manifest.config
    if config.media_type not in IMAGE_CONFIGS:
        return None
    response = registry.request(
        "GET", registry.blob_url(config.digest), what=f"image config {config.digest}",
        max_bytes=MAX_MANIFEST,
    )  # fmt: skip
    if digest_of(response.data, config.digest.partition(":")[0]) != config.digest:
        raise registry_error(registry, f"image config {config.digest} does not match its digest")
    try:
        document = json.loads(response.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise registry_error(registry, f"image config {config.digest} is not JSON") from None
    platform = Platform.of(document)
    return platform if platform is not None and platform.architecture else None


def choose(entries: List[Descriptor], arch: str, label: str, registry: Registry) -> Descriptor:
    """The entry for ``arch``: the first that matches, preferring podman's qemu disk."""
    fitting = [e for e in entries if matches(e.platform, arch)]
    if not fitting:
        have = sorted({str(e.platform) for e in entries if e.platform is not None})
        raise NoMatchingPlatformError(
            f"{label} has no manifest for linux/{arch}; its index has: "
            + (", ".join(have) if have else "no platforms"),
            platforms=tuple(have),
            registry=registry.registry,
            repository=registry.repository,
        )

    def rank(entry: Descriptor) -> int:
        kind = entry.annotations.get(DISKTYPE)
        return 0 if kind == PREFERRED_DISKTYPE else 1 if kind is None else 2

    return min(fitting, key=rank)
