"""``pyimagecache catalog refresh`` and ``pyimagecache catalog check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Tuple

# Shown in --help; the library owns the real defaults (importing it here would slow start-up).
_DEBIAN_HELP = "same as --root debian=URL"
_UBUNTU_HELP = "same as --root ubuntu=URL"
_ROOT_HELP = (
    "resolve FAMILY (a catalog 'distro': debian, ubuntu, fedora, centos-stream, almalinux, "
    "rocky, oraclelinux, opensuse-leap, alpine, archlinux, amazonlinux, freebsd) against this "
    "upstream root instead of its own, e.g. a mirror; repeatable"
)


def _root_spec(text: str) -> Tuple[str, str]:
    """``--root FAMILY=URL``, validated while parsing (a usage error, exit 2)."""
    from ..errors import RefreshError
    from ..refresh.run import parse_root

    try:
        return parse_root(text)
    except RefreshError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_root_spec.__name__ = "FAMILY=URL"


def register(subparsers: Any) -> None:
    catalog = subparsers.add_parser(
        "catalog",
        help="maintain the pinned image catalog",
        description="Maintain the pinned image catalog: 'catalog refresh' bumps pins to the "
        "newest complete upstream snapshots, 'catalog check' validates a catalog offline.",
    )
    sub = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)

    refresh = sub.add_parser(
        "refresh",
        help="bump pinned snapshots to the newest complete upstream ones",
        description="Resolve every alias (or those given) to its newest complete upstream "
        "snapshot and rewrite the catalog's snapshot, url, digests and bumped_at values "
        "(digests as upstream's checksum files publish them; no image is downloaded). "
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
        help="check the checksum files' signatures (SHA256SUMS.gpg, clear-signed CHECKSUM, "
        "CHECKSUM.asc, .sha256.asc, .SHA256.sig) against this OpenPGP keyring instead of the "
        "keys shipped with pyimagecache (default: $PYIMAGECACHE_KEYRING)",
    )
    refresh.add_argument(
        "--require-signatures",
        action="store_true",
        default=None,
        help="fail the aliases of families that publish no signature for their checksum files "
        "(default: $PYIMAGECACHE_REQUIRE_SIGNATURES)",
    )
    refresh.add_argument(
        "--no-verify-signatures",
        action="store_true",
        default=None,
        help="do not check signatures (no gpgv needed); the log and the provenance records "
        "say 'not-checked' (default: $PYIMAGECACHE_NO_VERIFY_SIGNATURES)",
    )
    refresh.add_argument(
        "--root",
        action="append",
        type=_root_spec,
        default=[],
        metavar="FAMILY=URL",
        help=_ROOT_HELP,
    )
    refresh.add_argument("--debian-root", metavar="URL", help=_DEBIAN_HELP)
    refresh.add_argument("--ubuntu-root", metavar="URL", help=_UBUNTU_HELP)
    refresh.set_defaults(func=_refresh)

    check = sub.add_parser(
        "check",
        help="validate a catalog (no network)",
        description="Check every pinning rule; list every problem; exit 1 if there is one. "
        "The package's own catalog must use https, known families and their arches, and give "
        "every pin a provenance record; a user's catalog (--catalog) needs only well-formed "
        "pins, the family rules applying to entries whose URLs point at the family's "
        "upstream.",
    )
    _catalog_option(check)
    check.add_argument(
        "--strict",
        action="store_true",
        help="apply the package catalog's rules to --catalog PATH (the default when PATH is "
        "the package's own catalog.json)",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON object on stdout: the catalog, the rules applied, "
        "and each problem as {alias, arch, field, message}",
    )
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

    path: Optional[Path] = args.catalog or embedded_catalog_path()
    if path is None:
        raise RefreshError(
            "the package's catalog.json is not a plain file here (installed from a wheel or "
            "zip?): pass --catalog PATH"
        )
    roots = dict(args.root)
    if args.debian_root:
        roots["debian"] = args.debian_root
    if args.ubuntu_root:
        roots["ubuntu"] = args.ubuntu_root
    settings = _signature_settings(args)
    result = refresh_catalog(
        path,
        aliases=args.alias,
        dry_run=args.dry_run,
        keyring=settings.keyring,
        verify_signatures=settings.verify_signatures,
        require_signatures=settings.require_signatures,
        roots=roots,
    )
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


def _signature_settings(args: argparse.Namespace) -> Any:
    """The environment's signature settings with the command line's on top."""
    from ..settings import Settings

    try:
        return Settings.from_environment(
            keyring=args.keyring,
            verify_signatures=False if args.no_verify_signatures else None,
            require_signatures=args.require_signatures,
        )
    except ValueError as exc:  # a malformed PYIMAGECACHE_* flag
        from ..errors import RefreshError

        raise RefreshError(str(exc)) from None


def _check(args: argparse.Namespace) -> int:
    from ..catalog import decode_document
    from ..errors import CatalogError
    from ..refresh.check import Problem, check_problems

    strict = args.catalog is None or args.strict or _is_package_catalog(args.catalog)
    where = str(args.catalog) if args.catalog is not None else "embedded catalog.json"
    try:
        if args.catalog is not None:
            raw = args.catalog.read_bytes()
        else:
            from importlib.resources import files

            raw = files("pyimagecache").joinpath("catalog.json").read_bytes()
        doc = decode_document(raw, where)
    except (OSError, CatalogError) as exc:
        if not args.json:
            raise
        from . import describe

        doc, problems = None, [Problem(None, None, None, describe(exc))]
    else:
        problems = check_problems(doc, embedded=strict, require_provenance=strict)
    rules = "package" if strict else "user"
    if args.json:
        import json

        result = {
            "catalog": where,
            "rules": rules,
            "aliases": len(doc) if isinstance(doc, dict) else None,
            "ok": not problems,
            "problems": [p.as_dict() for p in problems],
        }
        print(json.dumps(result, indent=2))
        return 1 if problems else 0
    for problem in problems:
        print(f"{where}: {problem}", file=sys.stderr)
    if problems:
        print(f"{where}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{where}: OK ({len(doc)} aliases, {rules} catalog rules)")
    return 0


def _is_package_catalog(path: Path) -> bool:
    """Whether ``path`` is the package's own catalog.json (a development checkout)."""
    import os

    from ..refresh import embedded_catalog_path

    own = embedded_catalog_path()
    try:
        return own is not None and os.path.samefile(path, own)
    except OSError:
        return False
