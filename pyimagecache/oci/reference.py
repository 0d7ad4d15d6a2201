"""Image references: ``oci://REGISTRY/REPO:TAG``, ``oci://REGISTRY/REPO@sha256:HEX`` and skopeo's
``docker://`` spelling of the same, parsed by the grammar of distribution's reference package.

As docker and skopeo read them: the first path component is the registry only when it looks
like a host (has a dot or a port, is ``localhost`` or a bracketed IPv6 address); otherwise the
image is on Docker Hub, whose API host is ``registry-1.docker.io`` and whose one-component
repositories live under ``library/``. A reference with neither tag nor digest means ``latest``.

>>> parse_reference("docker://ubuntu:24.04")
Reference(registry='registry-1.docker.io', repository='library/ubuntu', tag='24.04', digest=None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

from ..errors import InvalidReferenceError
from ..hashing import HEX_DIGITS

SCHEMES = ("oci", "docker")
DOCKER_HUB = "registry-1.docker.io"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})
DEFAULT_TAG = "latest"

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?"
)
_PATH_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"(sha256|sha512):([0-9a-f]+)")
#: distribution's limit on REGISTRY/REPO.
MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``registry`` is the host (and port) the API is reached at;
    ``digest`` (``sha256:<hex>``), when given, is what is fetched, the tag being then only
    a label, as in docker."""

    registry: str
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name(self) -> str:
        """``REGISTRY/REPO``"""
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What to ask the manifest endpoint for: the digest, else the tag (default latest)."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(f"{tag!r} is not a valid tag ([A-Za-z0-9_.-], 128 at most)")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=check_digest(digest, f"{self.name}@{digest}"))

    def __str__(self) -> str:
        text = f"oci://{self.name}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def check_digest(value: str, what: str) -> str:
    """A content digest ``sha256:<64 hex>`` or ``sha512:<128 hex>``, or InvalidReferenceError."""
    match = _DIGEST.fullmatch(value)
    if match is None or len(match.group(2)) != HEX_DIGITS[match.group(1)]:
        raise InvalidReferenceError(
            f"{what}: {value!r} is not a digest (sha256:<64 hex digits> or sha512:<128>)"
        )
    return value


def parse_reference(text: str) -> Reference:
    """Parse ``oci://`` or ``docker://`` ``[REGISTRY/]REPO[:TAG][@DIGEST]``; every malformed
    part is an :class:`~pyimagecache.errors.InvalidReferenceError` naming it.

    >>> parse_reference("oci://127.0.0.1:5000/disks/debian:12").target
    '12'
    """
    rest = _strip_scheme(text)
    name, _, digest = rest.partition("@")
    if digest:
        check_digest(digest, text)
    tag: Optional[str] = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(
                f"{text!r}: tag {tag!r} is not valid ([A-Za-z0-9_.-], at most 128, not "
                "starting with . or -)"
            )
    registry, repository = _split_name(name, text)
    return Reference(registry, repository, tag, digest or None)


def parse_repository(text: str) -> Reference:
    """``oci://REGISTRY/REPO`` with no tag or digest (a mirror base, a push target).

    >>> parse_repository("oci://reg.example/mirror").name
    'reg.example/mirror'
    """
    ref = parse_reference(text)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidReferenceError(f"{text!r}: expected REGISTRY/REPO without a tag or digest")
    return ref


def _strip_scheme(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidReferenceError(f"an image reference must be a string, got {text!r}")
    scheme, sep, rest = text.strip().partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise InvalidReferenceError(
            f"{text!r} is not an image reference: expected oci://REGISTRY/REPO[:TAG|@DIGEST] "
            "(or docker://...)"
        )
    if not rest:
        raise InvalidReferenceError(f"{text!r}: nothing after {scheme}://")
    return rest


def _split_name(name: str, text: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, rest
    else:
        registry, path = "docker.io", name
    if not _REGISTRY.fullmatch(registry):
        raise InvalidReferenceError(f"{text!r}: {registry!r} is not a registry host[:port]")
    registry = registry.lower()
    if registry in _HUB_NAMES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not path:
        raise InvalidReferenceError(f"{text!r} names no repository")
    for part in path.split("/"):
        if not _PATH_PART.fullmatch(part):
            raise InvalidReferenceError(
                f"{text!r}: repository component {part!r} is not valid (lowercase letters, "
                "digits and single separators . _ __ -)"
            )
    if len(registry) + 1 + len(path) > MAX_NAME:
        raise InvalidReferenceError(f"{text!r}: REGISTRY/REPO is longer than {MAX_NAME}")
    return registry, path
