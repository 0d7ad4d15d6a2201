"""``qemu-img info --output=json``-shaped facts about an open VMDK (qemu 7.2's
``vmdk_get_specific_info``, ``vmdk_co_get_info`` and ``vmdk_co_get_allocated_file_size``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List

from .grains import SparseExtent

if TYPE_CHECKING:
    from .image import Part, VmdkImage


def _extent_info(img: VmdkImage, part: Part) -> Dict[str, Any]:
    info: Dict[str, Any] = {}
    if part.compressed:
        info["compressed"] = True
    info["virtual-size"] = part.size
    info["filename"] = img.extent_path(part)
    if isinstance(part, SparseExtent):
        info["cluster-size"] = part.grain
        # qemu names the type of an extent from a descriptor line; the image's own is "".
        info["format"] = "SPARSE" if part.name else ""
    else:
        info["format"] = part.type
    return info


def _cluster_size(parts: List[Part]) -> Any:
    """The grain size when every extent is sparse with the same grain and compression (qemu
    reports none for flat extents or a mixture)."""
    first = parts[0]
    if not isinstance(first, SparseExtent):
        return None
    for part in parts[1:]:
        if not isinstance(part, SparseExtent) or (part.compressed, part.grain) != (
            first.compressed,
            first.grain,
        ):
            return None
    return first.grain


def _allocated(img: VmdkImage) -> int:
    """st_blocks of the image file plus those of each extent in another file (counted once
    per extent line, as qemu does)."""
    total = os.fstat(img.file.fd).st_blocks * 512
    for part in img.parts:
        file = getattr(part, "file", None)
        if file is not None and file is not img.file:
            total += os.fstat(file.fd).st_blocks * 512
    return total


def describe(img: VmdkImage) -> Dict[str, Any]:
    """The fields of ``qemu-img info --output=json`` for a VMDK, with the same names (the
    package-level :func:`pyimagecache.info` adds ``allocation``)."""
    result: Dict[str, Any] = {
        "virtual-size": img.virtual_size,
        "filename": str(img.path),
    }
    cluster = _cluster_size(img.parts)
    if cluster is not None:
        result["cluster-size"] = cluster
    result.update(
        {
            "format": "vmdk",
            "actual-size": _allocated(img),
            "format-specific": {
                "type": "vmdk",
                "data": {
                    "cid": img.cid,
                    "parent-cid": img.parent_cid,
                    "create-type": img.create_type,
                    "extents": [_extent_info(img, part) for part in img.parts],
                },
            },
            "dirty-flag": False,
        }
    )
    return result
