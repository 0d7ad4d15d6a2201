"""``pyimagecache convert SRC DST [--workers N] [--sync]`` and ``pyimagecache info IMAGE
[--json]``: any supported disk format, found by its magic bytes."""

from __future__ import annotations

import argparse
from typing import Any, Dict

from ._types import positive_int


def register(subparsers: Any) -> None:
    convert = subparsers.add_parser(
        "convert",
        help="convert a disk image to a sparse raw disk",
        description="Convert the disk image SRC (any supported format, found by its magic "
        "bytes, also inside an OVA, a Vagrant box or a compressed or tar wrapper, which is "
        "unpacked next to DST first) to a sparse raw disk DST (written to a temporary file "
        "and renamed into place: DST is untouched on error).",
    )
    convert.add_argument(
        "src",
        metavar="SRC",
        help="qcow2, VMDK, VHD, VHDX, VDI or raw, bare or in an OVA, a Vagrant box or an "
        "xz/gzip/zstd/bzip2/tar wrapper",
    )
    convert.add_argument("dst", metavar="DST", help="the raw disk to write")
    convert.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="decompression threads (default: one per CPU, at most 8)",
    )
    convert.add_argument(
        "--sync",
        action="store_true",
        help="flush DST to the disk before exiting (durable across a power loss)",
    )
    convert.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    convert.set_defaults(func=run_convert, logs=False)

    info = subparsers.add_parser(
        "info",
        help="describe a disk image",
        description="Print what qemu-img info prints for a disk image, plus how many bytes "
        "of the virtual disk are data, compressed, zero and unallocated.",
    )
    info.add_argument(
        "image", metavar="IMAGE", help="a disk image, bare or wrapped (as convert's SRC)"
    )
    info.add_argument("--json", action="store_true", help="print JSON (qemu-img's field names)")
    info.set_defaults(func=run_info, logs=False)


def warn_if_not_a_disk(path: str) -> None:
    """One warning when ``path`` is evidently not a disk image (text, an HTML page, an odd
    raw size, bytes unlike its name); the command then goes on as qemu-img would."""
    import os
    import sys

    from .. import formats

    try:
        fmt = formats.detect_file(path)
        if fmt not in formats.CONVERTIBLE:
            return  # the command refuses the format itself, in one line
        why = formats.not_a_disk(path, fmt, os.path.basename(path))
    except OSError:
        return  # the command itself says what is wrong with the file
    if why is not None:
        print(f"pyimagecache: warning: {path} {why}", file=sys.stderr)


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..converter import convert
    from ._progressbar import ProgressBar

    warn_if_not_a_disk(args.src)
    bar = ProgressBar(Path(args.src).name)  # draws only when stderr is a terminal
    try:
        convert(
            args.src,
            args.dst,
            workers=args.workers,
            progress=bar if bar.tty and not args.quiet else None,
            sync=args.sync,
        )
    finally:
        bar.close()
    return 0


def run_info(args: argparse.Namespace) -> int:
    import json

    from ..opener import info

    warn_if_not_a_disk(args.image)
    facts = info(args.image)
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        for line in human_lines(facts):
            print(line)
    return 0


def human_lines(facts: Dict[str, Any]) -> list[str]:
    """``qemu-img info``'s text form of the facts ``info`` gathered (any format)."""
    from ._output import human_bytes

    size = facts["virtual-size"]
    lines = [
        f"image: {facts.get('filename', '')}",
        f"file format: {facts['format']}",
        f"virtual size: {human_bytes(size)} ({size} bytes)",
    ]
    if "actual-size" in facts:
        lines.append(f"disk size: {human_bytes(facts['actual-size'])}")
    if "cluster-size" in facts:
        lines.append(f"cluster_size: {facts['cluster-size']}")
    if "backing-filename" in facts:
        lines.append(f"backing file: {facts['backing-filename']}")
        if "backing-filename-format" in facts:
            lines.append(f"backing file format: {facts['backing-filename-format']}")
    if "snapshots-count" in facts:
        lines.append(f"snapshots: {facts['snapshots-count']}")
    if "format-specific" in facts:  # as qemu-img: only formats that have such fields
        lines.append("format specific information:")
        for key, value in facts["format-specific"].get("data", {}).items():
            shown = str(value).lower() if isinstance(value, bool) else value
            lines.append(f"    {key}: {shown}")
        if "dirty-flag" in facts:
            lines.append(f"    dirty: {str(facts['dirty-flag']).lower()}")
    lines.append("allocation:")
    for kind, nbytes in facts["allocation"].items():
        share = nbytes * 100 / size if size else 0.0
        lines.append(f"    {kind}: {nbytes} bytes ({share:.1f}%)")
    return lines
