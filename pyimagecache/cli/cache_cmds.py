"""``list``, ``ensure``, ``copy``, ``cache list``, ``cache prune`` and ``cache verify``.

Handlers import the library inside the function: ``pyimagecache ensure ALIAS`` on a cache hit
must not pay for urllib3, tarfile or the qcow2 engine.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Dict, List, Optional

from ._options import add_network_options, add_source_options, settings_from
from ._output import human_bytes, print_table
from ._types import arch, digest, directory, size


def register(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list the catalog's image aliases",
        description="List the catalog's aliases (the embedded catalog, or $PYIMAGECACHE_CATALOG).",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="the whole catalog as JSON, as catalog.json spells it (provenance included)",
    )
    p.add_argument(
        "--provenance",
        action="store_true",
        help="one row per pin: where its digest was read (record), whether a signature was "
        "verified and by which key, and when",
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "ensure",
        help="download and convert an image once; print the raw disk's path",
        description="Print the path of a verified raw disk for ALIAS or URL (http, https, "
        "file), downloading and converting it on first use. Progress goes to stderr.",
    )
    p.add_argument(
        "image",
        metavar="ALIAS|URL",
        help="a catalog alias (see `pyimagecache list`), an http(s):// or file:// URL, or an "
        "oci:// or docker:// image reference",
    )
    p.add_argument(
        "--cache-dir",
        metavar="D",
        type=directory,
        help="default: $PYIMAGECACHE_CACHE_DIR or the platform cache directory",
    )
    p.add_argument(
        "--arch",
        metavar="A",
        type=arch,
        help="amd64, arm64, riscv64, ppc64le or s390x (default: this machine's)",
    )
    p.add_argument(
        "--sha256", type=digest("sha256"), metavar="H", help="expected SHA-256 of a URL's download"
    )
    p.add_argument(
        "--sha512", type=digest("sha512"), metavar="H", help="expected SHA-512 of a URL's download"
    )
    p.add_argument(
        "--keep-source", action="store_true", help="keep the downloaded source next to the raw disk"
    )
    add_network_options(p)
    add_source_options(p)
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress output, only warnings and errors"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead of the path: path, hit, alias, snapshot, arch, "
        "url, the digests verified, the source format, fallback (see README)",
    )
    p.set_defaults(func=cmd_ensure)

    p = sub.add_parser(
        "copy",
        help="copy a disk (holes kept), optionally growing it",
        description="Copy SRC to DST keeping holes; --size grows DST (sparse), never shrinks.",
    )
    p.add_argument("src", metavar="SRC", help="the disk to copy (raw)")
    p.add_argument("dst", metavar="DST", help="the new file (replaced atomically if it exists)")
    p.add_argument(
        "--size",
        metavar="SIZE",
        type=size,
        default=0,
        help="final size: bytes or K/M/G/T (e.g. 20G); default: SRC's size",
    )
    p.add_argument(
        "--sync",
        action="store_true",
        help="flush DST to the disk before exiting (durable across a power loss)",
    )
    p.set_defaults(func=cmd_copy, logs=False)  # copy_disk never logs: skip importing logging

    cache = sub.add_parser("cache", help="inspect or prune the image cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    cache_dir_help = "default: $PYIMAGECACHE_CACHE_DIR or the platform cache directory"
    p = cache_sub.add_parser(
        "list",
        help="cached disks, kept sources and partial downloads, with sizes and totals",
        description="List the raw disks of the cache (sizes, snapshot, whether the catalog "
        "still pins them), the sources kept beside them, partial downloads and the "
        "temporaries of killed runs, with totals.",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: entries, sources, partials, temporaries and totals (see README)",
    )
    p.add_argument("--cache-dir", metavar="D", type=directory, help=cache_dir_help)
    p.set_defaults(func=cmd_cache_list)
    p = cache_sub.add_parser(
        "prune",
        help="remove unpinned snapshots, stale partial downloads and unused lock files",
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--cache-dir", metavar="D", type=directory, help=cache_dir_help)
    p.set_defaults(func=cmd_cache_prune)
    p = cache_sub.add_parser(
        "verify",
        help="re-read every cached disk and report any whose content changed",
        description="Re-read every raw disk of the cache and compare its content digest with "
        "the one recorded when it was published (a VM booted on the cached disk, an editor, "
        "a failing disk); exit 1 when one changed or has no record.",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="rebuild what changed from the kept source or the network, verified against the "
        "digests it was first verified against",
    )
    p.add_argument("--json", action="store_true", help="one JSON object: every disk and its state")
    p.add_argument("--cache-dir", metavar="D", type=directory, help=cache_dir_help)
    add_network_options(p)
    add_source_options(p)
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress output, only warnings and errors"
    )
    p.set_defaults(func=cmd_cache_verify)


def cmd_list(args: argparse.Namespace) -> int:
    from ..catalog import entry_document, load_catalog

    entries = load_catalog()
    if args.json:
        import json

        print(json.dumps({a: entry_document(entries[a]) for a in sorted(entries)}, indent=2))
        return 0
    if args.provenance:
        from ..catalog import snapshot_of

        rows = [["ALIAS", "ARCH", "SNAPSHOT", "RECORD", "SIGNATURE", "KEY", "DATE"]]
        for alias in sorted(entries):
            info = entries[alias]
            for arch in sorted(info.arch):
                p = info.arch[arch].provenance
                cells = [p.record, p.signature, p.key, p.date] if p else []
                cells += [""] * (4 - len(cells))
                rows.append([alias, arch, snapshot_of(info, arch), *(c or "-" for c in cells)])
        print_table(rows)
        return 0
    rows = [["ALIAS", "DISTRO", "VERSION", "SNAPSHOT", "ARCH"]]
    for alias in sorted(entries):
        info = entries[alias]
        version = " ".join(x for x in (info.version, info.codename) if x)
        rows.append([alias, info.distro, version, info.snapshot, ",".join(sorted(info.arch))])
    print_table(rows)
    return 0


def cmd_ensure(args: argparse.Namespace) -> int:
    from ..cache import ensure_entry

    bars: List[Any] = []  # made on a miss only: a cache hit draws nothing and imports less

    def progress_for(phase: str) -> Optional[Callable[[int, Optional[int]], None]]:
        if args.quiet:
            return None
        if not bars:
            from ._progressbar import StageBars

            bars.append(StageBars(_label(args.image)))  # download and convert: a line each
        stage: Callable[[int, Optional[int]], None] = bars[0].stage(phase)
        return stage

    def on_wait(pid: Optional[int]) -> None:
        # Once, and only for a person watching: a script or a log gains nothing from it.
        if args.quiet or not sys.stderr.isatty():
            return
        from . import printable

        holder = f"process {pid}" if pid is not None else "another process"
        print(
            f"pyimagecache: waiting for {printable(args.image)}, which {holder} is already "
            "preparing",
            file=sys.stderr,
            flush=True,
        )

    try:
        ensured = ensure_entry(
            args.image,
            args.cache_dir,
            arch=args.arch,
            sha256=args.sha256,
            sha512=args.sha512,
            progress_for=progress_for,
            keep_source=args.keep_source,
            settings=settings_from(args),
            on_wait=on_wait,
        )
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        import json

        print(json.dumps(ensured_document(ensured.path, ensured.hit), indent=2))
    else:
        print(ensured.path)
    return 0


#: What ``ensure --json`` prints from the entry's sidecar, under the names it prints.
_ENSURED_FIELDS = (
    ("alias", "alias"),
    ("snapshot", "snapshot"),
    ("arch", "arch"),
    ("url", "url"),
    ("source_format", "source_format"),
    ("fallback_from", "fallback_from"),
)


def ensured_document(path: Any, hit: bool) -> Dict[str, Any]:
    """``ensure --json``: the raw disk, whether it was a hit, and what its sidecar says."""
    from ..sidecar import read_sidecar

    record = read_sidecar(path)
    doc: Dict[str, Any] = {"path": str(path), "hit": hit}
    doc.update({name: record.get(field) for name, field in _ENSURED_FIELDS})
    doc["verified"] = bool(record.get("verified"))
    doc["digests"] = {a: record[a] for a in ("sha256", "sha512") if record.get(a)}
    doc["size"] = record.get("size")
    doc["content"] = record.get("content")
    return doc


def _label(image: str) -> str:
    """What progress lines call an image: an alias or reference as given, a URL by its file
    name (as curl and pip do; the whole URL is in the log line above)."""
    from ..cachefiles import is_url, url_basename

    return (url_basename(image) or image) if is_url(image) else image


def cmd_copy(args: argparse.Namespace) -> int:
    from ..diskcopy import copy_disk

    copy_disk(args.src, args.dst, args.size, sync=args.sync)
    return 0


def cmd_cache_list(args: argparse.Namespace) -> int:
    from ..cachedir import resolve_cache_dir
    from ..catalog import load_catalog
    from ..inventory import Inventory, inventory

    directory = resolve_cache_dir(args.cache_dir)
    found = inventory(directory, load_catalog()) if directory.is_dir() else Inventory([], [])
    if args.json:
        import json

        print(json.dumps(cache_document(directory, found), indent=2))
        return 0
    print(f"cache: {directory}", file=sys.stderr)
    rows = [["NAME", "KIND", "APPARENT", "ALLOCATED", "SNAPSHOT", "STATUS"]]
    for e in found.entries:
        status = {True: "pinned", False: "unpinned", None: "url"}[e.pinned]
        if e.fallback_from:
            status = f"fallback for {e.fallback_from}"
        rows.append(
            [
                e.path.name,
                "disk",
                human_bytes(e.apparent),
                human_bytes(e.allocated),
                e.snapshot or "-",
                status,
            ]
        )
    for f in found.files:
        status = "kept" if f.kind == "source" else "-"
        if f.kind == "partial":
            status = "downloading" if f.in_use else "resumable" if f.resumable else "stale"
            if f.total:
                status += f" ({f.apparent * 100 // f.total}% of {human_bytes(f.total)})"
        rows.append(
            [f.path.name, f.kind, human_bytes(f.apparent), human_bytes(f.allocated), "-", status]
        )
    print_table(rows)
    print(summary(found.totals()))
    return 0


def summary(totals: Dict[str, Any]) -> str:
    """The totals of ``cache list`` in a line: each group that has files, then them all."""
    names = {
        "entries": ("disk", "disks"),
        "sources": ("kept source", "kept sources"),
        "partials": ("partial download", "partial downloads"),
        "temporaries": ("temporary", "temporaries"),
    }
    parts = []
    for key, (one, many) in names.items():
        group = totals[key]
        if group["count"] or key == "entries":
            noun = one if group["count"] == 1 else many
            parts.append(f"{group['count']} {noun} ({human_bytes(group['allocated_size'])})")
    return f"total: {', '.join(parts)}; {human_bytes(totals['allocated_size'])} allocated"


def cache_document(directory: Any, found: Any) -> Dict[str, Any]:
    """``cache list --json``: one object (README documents its keys)."""
    from ..inventory import FILE_KINDS

    return {
        "cache_dir": str(directory),
        "entries": [
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
                "fallback_from": e.fallback_from,
            }
            for e in found.entries
        ],
        **{
            group: [_file_document(f) for f in found.of_kind(kind)]
            for kind, group in FILE_KINDS.items()
        },
        "totals": found.totals(),
    }


def _file_document(f: Any) -> Dict[str, Any]:
    doc: Dict[str, Any] = {
        "path": str(f.path),
        "apparent_size": f.apparent,
        "allocated_size": f.allocated,
        "entry": f.stem,
    }
    if f.kind == "partial":
        doc.update({"url": f.url, "total": f.total, "in_use": f.in_use, "resumable": f.resumable})
    return doc


def cmd_cache_prune(args: argparse.Namespace) -> int:
    from ..cachedir import resolve_cache_dir
    from ..catalog import load_catalog
    from ..inventory import prune

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


def cmd_cache_verify(args: argparse.Namespace) -> int:
    from ..cachedir import resolve_cache_dir
    from ..verify import BUSY, CHANGED, OK, UNRECORDED, repair, verify_cache

    directory = resolve_cache_dir(args.cache_dir)

    def report(finding: Any) -> None:
        if args.json:
            return
        detail = f"  ({finding.detail})" if finding.detail else ""
        print(f"{finding.state:<10} {finding.raw.name}{detail}")

    findings = verify_cache(directory, report)
    repaired: Dict[str, str] = {}
    if args.repair:
        settings = settings_from(args)
        for finding in findings:
            if finding.state == BUSY or (finding.state == OK and not finding.detail):
                continue
            try:
                repair(finding, settings)
                repaired[finding.raw.name] = "repaired"
            except Exception as exc:  # each entry on its own: report, go on with the others
                from . import describe

                repaired[finding.raw.name] = f"not repaired: {describe(exc)}"
            if not args.json:
                print(f"{repaired[finding.raw.name]:<10} {finding.raw.name}")
    bad = [
        f
        for f in findings
        if f.state in (CHANGED, UNRECORDED) and repaired.get(f.raw.name) != "repaired"
    ]
    if args.json:
        import json

        entries = [
            {
                "path": str(f.raw),
                "state": f.state,
                "detail": f.detail,
                **({"repair": repaired[f.raw.name]} if f.raw.name in repaired else {}),
            }
            for f in findings
        ]
        print(
            json.dumps({"cache_dir": str(directory), "entries": entries, "ok": not bad}, indent=2)
        )
    elif not args.quiet:
        print(
            f"{len(findings)} disks: {sum(f.state == OK for f in findings)} as published, "
            f"{sum(f.state == CHANGED for f in findings)} changed, "
            f"{sum(f.state == UNRECORDED for f in findings)} without a record, "
            f"{sum(f.state == BUSY for f in findings)} busy"
            + (
                f"; {sum(v == 'repaired' for v in repaired.values())} repaired"
                if args.repair
                else ""
            ),
            file=sys.stderr,
        )
    return 1 if bad else 0
