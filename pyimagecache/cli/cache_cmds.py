"""``list``, ``ensure``, ``copy``, ``cache list`` and ``cache prune``.

Handlers import the library inside the function: ``pyimagecache ensure ALIAS`` on a cache hit
must not pay for urllib3, tarfile or the qcow2 engine.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, List, Optional


def register(sub: Any) -> None:
    p = sub.add_parser("list", help="list the catalog's image aliases")
    p.add_argument("--json", action="store_true", help="the whole catalog as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "ensure",
        help="download and convert an image once; print the raw disk's path",
        description="Print the path of a verified raw disk for ALIAS or URL (http, https, "
        "file), downloading and converting it on first use. Progress goes to stderr.",
    )
    p.add_argument("image", metavar="ALIAS|URL")
    p.add_argument("--cache-dir", metavar="D", help="default: $PYIMAGECACHE_CACHE_DIR or the "
                   "platform cache directory")
    p.add_argument("--arch", metavar="A", help="amd64 or arm64 (default: this machine's)")
    p.add_argument("--sha256", metavar="H", help="expected SHA-256 of a URL's download")
    p.add_argument("--keep-source", action="store_true",
                   help="keep the downloaded source next to the raw disk")
    p.set_defaults(func=cmd_ensure)

    p = sub.add_parser(
        "copy",
        help="copy a disk (holes kept), optionally growing it",
        description="Copy SRC to DST keeping holes; --size grows DST (sparse), never shrinks.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--size", metavar="SIZE", default="0",
                   help="final size: bytes or K/M/G/T (e.g. 20G); default: SRC's size")
    p.add_argument("--sync", action="store_true",
                   help="flush DST to the disk before exiting (durable across a power loss)")
    p.set_defaults(func=cmd_copy, logs=False)  # copy_disk never logs: skip importing logging

    cache = sub.add_parser("cache", help="inspect or prune the image cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    p = cache_sub.add_parser("list", help="cached disks, sizes, snapshots, pin status")
    p.add_argument("--json", action="store_true")
    p.add_argument("--cache-dir", metavar="D")
    p.set_defaults(func=cmd_cache_list)
    p = cache_sub.add_parser(
        "prune", help="remove unpinned snapshots and stale partial downloads"
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--cache-dir", metavar="D")
    p.set_defaults(func=cmd_cache_prune)


def cmd_list(args: argparse.Namespace) -> int:
    from ..catalog import load_catalog

    entries = load_catalog()
    if args.json:
        out: Dict[str, Any] = {}
        for alias in sorted(entries):
            info = entries[alias]
            entry: Dict[str, Any] = {"distro": info.distro, "version": info.version}
            if info.codename:  # omitted when empty, as in catalog.json
                entry["codename"] = info.codename
            entry["snapshot"] = info.snapshot
            if info.bumped_at:
                entry["bumped_at"] = info.bumped_at
            entry["arch"] = {a: {"url": i.url, "sha256": i.sha256} for a, i in info.arch.items()}
            out[alias] = entry
        import json

        print(json.dumps(out, indent=2))
        return 0
    rows = [["ALIAS", "DISTRO", "SNAPSHOT", "ARCH"]]
    for alias in sorted(entries):
        info = entries[alias]
        name = " ".join(x for x in (info.distro, info.version, info.codename) if x)
        rows.append([alias, name, info.snapshot, ",".join(sorted(info.arch))])
    _table(rows)
    return 0


def cmd_ensure(args: argparse.Namespace) -> int:
    from ..cache import ensure_phased

    bars: List[Any] = []

    def progress_for(phase: str) -> Optional[Callable[[int, Optional[int]], None]]:
        from ._progressbar import ProgressBar

        for bar in bars:
            bar.close()
        bar = ProgressBar(f"{phase} {args.image}", log_when_not_tty=True)
        bars.append(bar)
        return bar

    try:
        path = ensure_phased(
            args.image,
            args.cache_dir,
            arch=args.arch,
            sha256=args.sha256,
            progress_for=progress_for,
            keep_source=args.keep_source,
        )
    finally:
        for bar in bars:
            bar.close()
    print(path)
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from ..diskcopy import copy_disk, parse_size

    copy_disk(args.src, args.dst, parse_size(args.size), sync=args.sync)
    return 0


def cmd_cache_list(args: argparse.Namespace) -> int:
    from ..cachedir import resolve_cache_dir
    from ..catalog import load_catalog
    from ..inventory import list_entries

    directory = resolve_cache_dir(args.cache_dir)
    entries = list_entries(directory, load_catalog()) if directory.is_dir() else []
    if args.json:
        import json

        print(json.dumps([
            {
                "path": str(e.path),
                "apparent_size": e.apparent,
                "allocated_size": e.allocated,
                "alias": e.alias,
                "snapshot": e.snapshot,
                "arch": e.arch,
                "url": e.url,
                "pinned": e.pinned,
                "created": e.created,
            }
            for e in entries
        ], indent=2))
        return 0
    from ._progressbar import human_bytes

    print(f"cache: {directory}", file=sys.stderr)
    rows = [["NAME", "APPARENT", "ALLOCATED", "SNAPSHOT", "PINNED"]]
    for e in entries:
        pinned = {True: "yes", False: "no", None: "url"}[e.pinned]
        rows.append([e.path.name, human_bytes(e.apparent), human_bytes(e.allocated),
                     e.snapshot or "-", pinned])
    _table(rows)
    return 0


def cmd_cache_prune(args: argparse.Namespace) -> int:
    from ..cachedir import resolve_cache_dir
    from ..catalog import load_catalog
    from ..inventory import prune
    from ._progressbar import human_bytes

    directory = resolve_cache_dir(args.cache_dir)
    if not directory.is_dir():
        print(f"nothing to prune: {directory} does not exist", file=sys.stderr)
        return 0
    result = prune(directory, load_catalog(), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in result.removed:
        print(f"{verb} {path}")
    for path in result.skipped:
        print(f"skipped {path}: in use by another process")
    print(f"{verb} {len(result.removed)} files, {human_bytes(result.freed)}", file=sys.stderr)
    return 0


def _table(rows: List[List[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
