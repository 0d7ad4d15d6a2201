"""``qemu-img info --output=json``-shaped facts about an open qcow2 image."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any, Dict, List

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
    result: Dict[str, Any] = {}
    if img.snapshots_count:
        result["snapshots"] = snapshots(img)
    result.update(
        {
            "virtual-size": img.virtual_size,
            "filename": str(img.path),
            "cluster-size": img.cluster_size,
            "format": "qcow2",
            "actual-size": os.fstat(img.file.fd).st_blocks * 512,
            "dirty-flag": img.dirty,
            "format-specific": {"type": "qcow2", "data": specific},
            "snapshots-count": img.snapshots_count,
        }
    )
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


#: A snapshot table entry's fixed part (qcow2.txt, "Snapshots"): L1 table offset and size,
#: id and name lengths, date (s, ns), VM clock (ns), VM state size, extra data size.
_SNAPSHOT = struct.Struct(">QIHHIIQII")
#: qemu's QCOW_MAX_SNAPSHOT_EXTRA_DATA: a larger extra data area is a corrupt table.
MAX_EXTRA_DATA = 1024


def snapshots(img: Image) -> List[Dict[str, Any]]:
    """``qemu-img info``'s ``snapshots``: one object per internal snapshot, with its keys
    (``id``, ``name``, ``vm-state-size``, ``date-sec``, ``date-nsec``, ``vm-clock-sec``,
    ``vm-clock-nsec``, and ``icount`` when the snapshot records one)."""
    from ..errors import Qcow2CorruptError

    out: List[Dict[str, Any]] = []
    pos = img.header.snapshots_offset
    for index in range(img.snapshots_count):
        where = f"snapshot table entry {index} at {pos:#x}"
        fixed = img.file.pread(_SNAPSHOT.size, pos)
        if len(fixed) < _SNAPSHOT.size:
            raise Qcow2CorruptError(f"{where}: past the end of the file")
        _, _, id_size, name_size, date_sec, date_nsec, clock, state, extra_size = _SNAPSHOT.unpack(
            fixed
        )
        if extra_size > MAX_EXTRA_DATA:
            raise Qcow2CorruptError(
                f"{where}: extra data of {extra_size} bytes exceeds {MAX_EXTRA_DATA}"
            )
        rest = extra_size + id_size + name_size
        body = img.file.pread(rest, pos + _SNAPSHOT.size)
        if len(body) < rest:
            raise Qcow2CorruptError(f"{where}: past the end of the file")
        extra = body[:extra_size]
        icount = None
        if extra_size >= 8:
            state = int.from_bytes(extra[0:8], "big")  # vm_state_size_large
        if extra_size >= 24:
            icount = int.from_bytes(extra[16:24], "big")
        ident = body[extra_size : extra_size + id_size].decode("utf-8", "replace")
        name = body[extra_size + id_size :].decode("utf-8", "replace")
        entry: Dict[str, Any] = {}
        if icount is not None and icount != (1 << 64) - 1:  # all ones: none recorded
            entry["icount"] = icount
        entry.update(
            {
                "vm-clock-nsec": clock % 1_000_000_000,
                "name": name,
                "date-sec": date_sec,
                "date-nsec": date_nsec,
                "vm-clock-sec": clock // 1_000_000_000,
                "id": ident,
                "vm-state-size": state,
            }
        )
        out.append(entry)
        pos += -(-(_SNAPSHOT.size + rest) // 8) * 8  # entries are padded to 8 bytes
    return out
