"""A registry as a fleet's shared cache: ``blob_source_for`` asks it for a pinned file.

A mirror ``oci://REGISTRY/REPO`` holds files as single-blob artifacts (see :func:`push_file`),
so the pin is the address: ``HEAD /v2/REPO/blobs/sha256:<pin>``. A file pinned by SHA-512
only (Debian's) cannot be addressed that way; it is found by its tag, and the artifact's
``org.pyimagecache.sha256``/``sha512`` annotations, when present, must agree with the pins.
The mirror is trusted for nothing: :func:`fetch_disk` verifies what it downloads.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..errors import RegistryError
from ..hashing import parse_digest
from ..settings import Settings
from .layout import AS_IS, BLOB
from .manifest import Descriptor
from .platforms import arch_key
from .reference import parse_repository
from .resolver import Resolved, resolve_with
from .transport import Registry

log = logging.getLogger("pyimagecache")

#: Annotations push records the pinned digests under.
SHA256_ANNOTATION = "org.pyimagecache.sha256"
SHA512_ANNOTATION = "org.pyimagecache.sha512"
#: Media type reported for a blob found by digest alone (a registry does not say one).
UNKNOWN_BLOB_TYPE = "application/octet-stream"


def blob_source_for(
    mirror_base: str,
    sha256: Optional[str],
    tag: Optional[str] = None,
    settings: Optional[Settings] = None,
    *,
    sha512: Optional[str] = None,
    arch: Optional[str] = None,
) -> Optional[Resolved]:
    """Where the mirror ``oci://REGISTRY/REPO`` keeps the file pinned by ``sha256`` (hex),
    or None when it does not have it (404). With ``tag`` (``<alias>-<snapshot>-<arch>``, as
    ``pyimagecache push`` names them), a blob not found by digest is looked up by tag; a tag
    whose file disagrees with a pin is None too. Anything but a 404 (auth, TLS, a bad
    manifest) raises. ``arch`` picks from an index under the tag (default: this machine's).

    >>> blob_source_for("oci://127.0.0.1:5000/mirror", "ab12...")  # doctest: +SKIP
    Resolved(..., layout='blob', ...)
    """
    base = parse_repository(mirror_base)
    settings = settings if settings is not None else Settings.from_environment()
    registry = Registry(base.registry, base.repository, settings)
    if sha256 is not None:
        sha256 = parse_digest(sha256, "sha256")
        digest = f"sha256:{sha256}"
        head = registry.request(
            "HEAD", registry.blob_url(digest), what=f"blob {digest}", ok=(200, 404)
        )
        if head.status == 200:
            length = head.headers.get("Content-Length", "").strip()
            size = int(length) if length.isdigit() else -1
            blob = Descriptor(UNKNOWN_BLOB_TYPE, digest, size, {})
            return Resolved(base, None, blob, BLOB, AS_IS)
    if tag is None:
        return None
    try:
        found = resolve_with(registry, base.with_tag(tag), arch_key(arch))
    except RegistryError as exc:
        if exc.status == 404:
            log.debug("%s has no tag %s", mirror_base, tag)
            return None
        raise
    pins = {SHA256_ANNOTATION: sha256, SHA512_ANNOTATION: sha512}
    if sha256 is not None and found.extract == AS_IS and found.sha256 not in (None, sha256):
        log.info(
            "%s:%s holds %s, not the pinned sha256 %s", mirror_base, tag, found.blob.digest, sha256
        )
        return None
    for key, pin in pins.items():
        recorded = found.annotations.get(key)
        if pin is not None and recorded is not None and recorded.lower() != pin.lower():
            log.info(
                "%s:%s is annotated %s=%s, not the pin %s", mirror_base, tag, key, recorded, pin
            )
            return None
    return found
