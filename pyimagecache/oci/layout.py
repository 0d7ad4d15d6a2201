"""Which blob of an image manifest is the disk, and how to get the disk out of it.

Two layouts are read:

- **KubeVirt containerDisk**: an image (config ``...image.config.v1+json`` or Docker's) whose
  layers are tar archives (plain, gzip or zstd). The disk is the one regular file under
  ``disk/`` of the image's largest layer (the last one of equal size), as kubevirt/containerdisks
  builds them: one layer holding ``disk/`` and the image. Links, devices and paths that escape
  (absolute, ``..``) refuse the layer (:data:`CONTAINERDISK_MEMBER`).
- **Single-blob disk artifact** (podman machine-os, ``oras push``, :func:`push_file`): a
  manifest with one layer, which is the disk or a compressed disk, named by its
  ``org.opencontainers.image.title``. A manifest is an artifact when it says so
  (``artifactType``, or a config that is not an image config); an image with one layer that is
  not a tar archive is read as one too.
"""

from __future__ import annotations

import posixpath
import tarfile
from typing import List, NamedTuple, Optional

from ..errors import RegistryError
from ..unpack import MemberRule
from .manifest import IMAGE_CONFIGS, Descriptor, Manifest

CONTAINERDISK = "containerdisk"
ARTIFACT = "artifact"
#: A blob found by its digest alone (a mirror holding the pinned file): no manifest.
BLOB = "blob"
#: How :func:`fetch_disk` gets the disk out of the blob: as it is, or from a tar layer.
AS_IS = ""
TAR = "tar"

_TAR_PREFIXES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
)
_TAR_SUFFIXES = ("", "+gzip", "+zstd", ".gzip", ".gz")
TITLE = "org.opencontainers.image.title"


class Layout(NamedTuple):
    kind: str  # CONTAINERDISK or ARTIFACT
    blob: Descriptor
    extract: str  # AS_IS or TAR
    title: Optional[str]


def is_tar_layer(media_type: str) -> bool:
    """Whether a layer of this media type is a tar archive (plain or compressed).

    >>> is_tar_layer("application/vnd.docker.image.rootfs.diff.tar.gzip")
    True
    """
    base = media_type.split(";")[0].strip().lower()
    return any(base == p + s for p in _TAR_PREFIXES for s in _TAR_SUFFIXES)


def disk_of(manifest: Manifest, label: str) -> Layout:
    """The layer that holds the disk of ``manifest`` (``label`` names it in errors)."""
    layers = manifest.descriptors("layers")
    if not layers:
        raise RegistryError(f"{label} ({manifest.digest}) has no layers, so no disk")
    config = manifest.config
    artifact = manifest.artifact_type is not None or config.media_type not in IMAGE_CONFIGS
    tars = [layer for layer in layers if is_tar_layer(layer.media_type)]
    if not artifact and len(tars) == len(layers):
        best = max(range(len(tars)), key=lambda i: (tars[i].size, i))
        return Layout(CONTAINERDISK, tars[best], TAR, tars[best].title)
    if len(layers) == 1:
        return Layout(ARTIFACT, layers[0], AS_IS, layers[0].title)
    raise RegistryError(
        f"{label} ({manifest.digest}) is neither a containerDisk (an image of tar layers) nor "
        f"a single-blob disk artifact: it has {len(layers)} layers ({_listing(layers)})"
    )


def _listing(layers: List[Descriptor]) -> str:
    shown = [f"{d.title or d.digest[:19]}: {d.media_type}" for d in layers[:6]]
    return ", ".join(shown) + (", ..." if len(layers) > 6 else "")


def _containerdisk_member(member: tarfile.TarInfo) -> bool:
    # Links, devices and paths leaving the layer never get here: unpack refuses the whole
    # archive for any of them, whatever rule picks the disk.
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if not parts or parts[0] != "disk" or len(parts) == 1 or not member.isreg():
        return False  # outside disk/, disk/ itself, or a directory under it
    return not posixpath.basename(member.name).startswith(".wh.")  # whiteouts are not files


#: The disk in a containerDisk layer.
CONTAINERDISK_MEMBER = MemberRule(_containerdisk_member, "the one regular file under disk/")
