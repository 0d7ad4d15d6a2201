"""``resolve``: a reference and an arch in, what to download out (no blob is read).

The manifest digest in the result is what cache names should be made of: a tag moved to
another image resolves to another digest, so the cache misses instead of serving the old
image under the tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from ..errors import NoMatchingPlatformError
from ..settings import Settings
from .layout import disk_of
from .manifest import Descriptor, config_platform, fetch_manifest, for_platform
from .platforms import Platform, arch_key, matches
from .reference import Reference, parse_reference
from .transport import Registry


@dataclass(frozen=True)
class Resolved:
    """Where the disk is and what it is.

    ``manifest_digest`` is the image manifest's (after the index, for ``arch``), None for a
    blob a mirror holds under its digest alone; ``index_digest`` the index's, when there was
    one. ``blob`` is the descriptor of the blob to download (digest, size, media type,
    annotations); ``layout`` is ``containerdisk``, ``artifact`` or ``blob``; ``extract`` is
    ``""`` (the blob is the disk) or ``"tar"`` (the disk is the one file under ``disk/`` of
    the blob). ``title`` is the disk's file name when the registry says one
    (``org.opencontainers.image.title``); ``annotations`` are the manifest's;
    ``platform`` the index entry's, or what an image's config declares (an
    image for another arch is a NoMatchingPlatformError, as an index without ours is).
    """

    reference: Reference
    manifest_digest: Optional[str]
    blob: Descriptor
    layout: str
    extract: str
    title: Optional[str] = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Optional[Platform] = None
    index_digest: Optional[str] = None
    artifact_type: Optional[str] = None

    @property
    def registry(self) -> str:
        return self.reference.registry

    @property
    def repository(self) -> str:
        return self.reference.repository

    @property
    def sha256(self) -> Optional[str]:
        """The blob's SHA-256 in hex (None for a sha512-addressed blob)."""
        algorithm, _, hexdigest = self.blob.digest.partition(":")
        return hexdigest if algorithm == "sha256" else None


def resolve(
    reference: Union[str, Reference],
    arch: Optional[str] = None,
    settings: Optional[Settings] = None,
) -> Resolved:
    """Fetch the manifest ``reference`` names (following an index to ``arch``'s entry,
    default this machine's), verify it, and decide which blob is the disk.

    >>> r = resolve("oci://quay.io/containerdisks/fedora:40", "amd64")  # doctest: +SKIP
    >>> r.layout, r.blob.digest  # doctest: +SKIP
    ('containerdisk', 'sha256:...')
    """
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    settings = settings if settings is not None else Settings.from_environment()
    registry = Registry(ref.registry, ref.repository, settings)
    return resolve_with(registry, ref, arch_key(arch))


def resolve_with(registry: Registry, ref: Reference, arch: str) -> Resolved:
    """:func:`resolve` over an existing connection (``arch`` a catalog key)."""
    label = str(ref)
    top = fetch_manifest(registry, ref.target, ref.digest)
    manifest, entry = for_platform(registry, top, arch, label)
    layout = disk_of(manifest, label)
    platform = entry.platform if entry is not None else config_platform(registry, manifest)
    if entry is None and platform is not None and not matches(platform, arch):
        raise NoMatchingPlatformError(
            f"{label} is an image for {platform}, not linux/{arch}",
            platforms=(str(platform),),
            registry=registry.registry,
            repository=registry.repository,
        )
    return Resolved(
        reference=ref,
        manifest_digest=manifest.digest,
        blob=layout.blob,
        layout=layout.kind,
        extract=layout.extract,
        title=layout.title,
        annotations=manifest.annotations,
        platform=platform,
        index_digest=top.digest if top.is_index else None,
        artifact_type=manifest.artifact_type,
    )
