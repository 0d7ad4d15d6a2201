"""``pyimagecache catalog refresh`` and ``pyimagecache catalog check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

# Shown in --help; the library owns the real defaults (importing it here would slow start-up).
_DEBIAN_HELP = "Debian index root (default: https://cloud.debian.org/images/cloud/)"
_UBUNTU_HELP = "Ubuntu index root (default: https://cloud-images.ubuntu.com/releases/)"


def register(subparsers: Any) -> None:
    catalog = subparsers.add_parser(
        "catalog", help="maintain the pinned image catalog", description=__doc__
    )
    sub = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)

    refresh = sub.add_parser(
        "refresh",
        help="bump pinned snapshots to the newest complete upstream ones",
        description="Resolve every alias (or those given) to its newest complete upstream "
        "snapshot and rewrite the catalog's snapshot, url, sha256 and bumped_at values. "
        "Any failure: nothing is written and every failure is listed.",
    )
    _catalog_option(refresh)
    refresh.add_argument(
        "--alias", action="extend", nargs="+", metavar="A", help="only these aliases"
    )
    refresh.add_argument(
        "--dry-run", action="store_true", help="print the change as a diff, write nothing"
    )
    refresh.add_argument(
        "--keyring",
        type=Path,
        help="verify SHA512SUMS.sign / SHA256SUMS.gpg with gpgv against this keyring",
    )
    refresh.add_argument("--debian-root", metavar="URL", help=_DEBIAN_HELP)
    refresh.add_argument("--ubuntu-root", metavar="URL", help=_UBUNTU_HELP)
    refresh.set_defaults(func=_refresh)

    check = sub.add_parser(
        "check",
        help="validate a catalog (no network)",
        description="Check every pinning rule; list every problem; exit 1 if there is one.",
    )
    _catalog_option(check)
    check.set_defaults(func=_check)


def _catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        type=Path,
        metavar="PATH",
        help="catalog JSON file (default: the package's own catalog.json)",
    )


def _refresh(args: argparse.Namespace) -> int:
    import difflib

    from ..errors import RefreshError
    from ..refresh import embedded_catalog_path, refresh_catalog
    from ._progressbar import ProgressBar

    path: Optional[Path] = args.catalog or embedded_catalog_path()
    if path is None:
        raise RefreshError(
            "the package's catalog.json is not a plain file here (installed from a wheel or "
            "zip?): pass --catalog PATH"
        )
    bars = []

    def progress_for(label: str) -> ProgressBar:
        bar = ProgressBar(f"hashing {label}", log_when_not_tty=True)
        bars.append(bar)
        return bar

    roots = {}
    if args.debian_root:
        roots["debian_root"] = args.debian_root
    if args.ubuntu_root:
        roots["ubuntu_root"] = args.ubuntu_root
    try:
        result = refresh_catalog(
            path,
            aliases=args.alias,
            dry_run=args.dry_run,
            keyring=args.keyring,
            progress_for=progress_for,
            **roots,
        )
    finally:
        for bar in bars:
            bar.close()
    if args.dry_run and result.changed:
        sys.stdout.writelines(
            difflib.unified_diff(
                result.old.decode().splitlines(keepends=True),
                result.new.decode().splitlines(keepends=True),
                f"{path} (pinned)",
                f"{path} (refreshed)",
            )
        )
    if not result.changed:
        print(f"{path}: up to date", file=sys.stderr)
    elif result.written:
        print(f"{path}: bumped {', '.join(result.changed)}", file=sys.stderr)
    else:
        print(f"{path}: would bump {', '.join(result.changed)} (dry run)", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..catalog import decode_document
    from ..refresh import check_document

    if args.catalog is not None:
        where, raw = str(args.catalog), args.catalog.read_bytes()
    else:
        from importlib.resources import files

        resource = files("pyimagecache").joinpath("catalog.json")
        where, raw = "embedded catalog.json", resource.read_bytes()
    problems = check_document(decode_document(raw, where))
    for problem in problems:
        print(f"{where}: {problem}", file=sys.stderr)
    if problems:
        print(f"{where}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{where}: OK ({len(decode_document(raw, where))} aliases)")
    return 0
