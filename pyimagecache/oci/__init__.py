"""OCI registries as a source of disk images and as a fleet's shared cache.

The API (each name imported lazily, so ``import pyimagecache.oci`` loads no urllib3):

``parse_reference(text) -> Reference``
    ``oci://REGISTRY/REPO:TAG``, ``oci://REGISTRY/REPO@sha256:HEX`` or ``docker://...``;
    InvalidReferenceError for a malformed one (:mod:`.reference`).
``resolve(reference, arch=None, settings=None) -> Resolved``
    The verified manifest for ``arch`` (an index followed to its entry) and the descriptor of
    the disk blob: manifest digest (cache names come from it, so a moved tag is a miss), blob
    digest, size and media type, layout (``containerdisk`` or ``artifact``), how to extract,
    title, annotations (:mod:`.resolver`, :mod:`.layout`).
``fetch_disk(resolved, dest, settings=None, progress=None, watch=None, *, expected=None) -> Path``
    The blob downloaded resumably and verified; a containerDisk's ``disk/`` file extracted
    sparsely; dest holds the disk image in its own format (:mod:`.pull`).
``blob_source_for(mirror_base, sha256, tag=None, settings=None, *, sha512=None, arch=None)``
    ``-> Optional[Resolved]``: a registry used as a mirror, asked for a pinned file by digest
    (then by tag); None when it does not have it (:mod:`.mirror`).
``push_file(path, reference, *, media_type, title, annotations, settings, tag, ...) -> str``
    A file uploaded as a single-blob artifact; returns the manifest digest (:mod:`.push`).

Transport, TLS and the plain-http rule are in :mod:`.transport`, authentication in
:mod:`.auth` and :mod:`.credentials`. Errors: :class:`~pyimagecache.errors.RegistryError`
(a DownloadError), :class:`~pyimagecache.errors.RegistryAuthError`,
:class:`~pyimagecache.errors.NoMatchingPlatformError`,
:class:`~pyimagecache.errors.InvalidReferenceError`; a bad containerDisk layer is a
:class:`~pyimagecache.errors.ContainerError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .mirror import blob_source_for
    from .pull import fetch_disk
    from .push import push_file
    from .reference import Reference, parse_reference
    from .resolver import Resolved, resolve

_LAZY = {
    "parse_reference": "reference",
    "Reference": "reference",
    "resolve": "resolver",
    "Resolved": "resolver",
    "fetch_disk": "pull",
    "blob_source_for": "mirror",
    "push_file": "push",
}

__all__ = [
    "Reference",
    "Resolved",
    "blob_source_for",
    "fetch_disk",
    "parse_reference",
    "push_file",
    "resolve",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
