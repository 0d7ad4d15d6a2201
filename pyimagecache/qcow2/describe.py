"""``qemu-img info --output=json``-shaped facts about an open qcow2 image."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from .image import Image


def describe(img: Image) -> Dict[str, Any]:
    """The fields of ``qemu-img info --output=json`` that apply to qcow2, with the same names
    (the package-level :func:`pyimagecache.info` adds ``allocation``)."""
    hdr = img.header
    specific: Dict[str, Any] = {
        "compat": "0.10" if hdr.version == 2 else "1.1",
        "compression-type": "zlib" if hdr.compression_type == "deflate" else "zstd",
        "refcount-bits": img.refcount_bits,
    }
    if hdr.version == 3:
        specific.update(
            {
                "lazy-refcounts": img.lazy_refcounts,
                "corrupt": img.corrupt,
                "extended-l2": img.extended_l2,
            }
        )
        if hdr.data_file is not None:
            specific["data-file"] = hdr.data_file
            specific["data-file-raw"] = hdr.data_file_raw
    result: Dict[str, Any] = {
        "virtual-size": img.virtual_size,
        "filename": str(img.path),
        "cluster-size": img.cluster_size,
        "format": "qcow2",
        "actual-size": os.fstat(img.file.fd).st_blocks * 512,
        "dirty-flag": img.dirty,
        "format-specific": {"type": "qcow2", "data": specific},
        "snapshots-count": img.snapshots_count,
    }
    if hdr.backing_file is not None:
        result["backing-filename"] = hdr.backing_file
        result["full-backing-filename"] = (
            hdr.backing_file
            if os.path.isabs(hdr.backing_file)
            else os.path.join(os.path.dirname(str(img.path)), hdr.backing_file)
        )
        if hdr.backing_format is not None:
            result["backing-filename-format"] = hdr.backing_format
    return result
