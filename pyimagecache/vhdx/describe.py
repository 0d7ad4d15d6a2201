"""``qemu-img info --output=json``-shaped facts about an open VHDX image.

qemu 7.2 prints no format-specific block for VHDX, and its dirty flag is always false.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:
    from .image import VhdxImage


def describe(img: VhdxImage) -> Dict[str, Any]:
    """The fields ``qemu-img info --output=json`` prints for a VHDX image, with its names."""
    return {
        "virtual-size": img.virtual_size,
        "filename": str(img.path),
        "cluster-size": img.block_size,
        "format": "vhdx",
        "actual-size": os.fstat(img.file.fd).st_blocks * 512,
        "dirty-flag": False,
    }
