"""``pyimagecache push ALIAS oci://REGISTRY/REPO``: fill a registry used as a fleet's mirror.

The verified upstream file of each alias and arch (what ``ensure --keep-source`` keeps, or the
raw disk itself when upstream publishes a raw image) goes up as a single-blob artifact tagged
``<alias>-<snapshot>-<arch>``, annotated with the alias, snapshot, arch, upstream URL and the
pinned digests, so that ``PYIMAGECACHE_MIRRORS=oci://REGISTRY/REPO`` finds it by its pin.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from .._log import info as _log
from ._options import add_network_options, settings_from
from ._types import arch, directory


def repository(text: str) -> Any:
    """``oci://REGISTRY/REPO`` (no tag), checked while parsing."""
    from ..errors import InvalidReferenceError
    from ..oci.reference import parse_repository

    try:
        return parse_repository(text)
    except InvalidReferenceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "push",
        help="upload an alias's verified upstream file to an OCI registry (a mirror)",
        description="Upload the verified upstream file of ALIAS (downloaded and checked first "
        "if the cache lacks it) to REGISTRY/REPO as a single-blob OCI artifact tagged "
        "<alias>-<snapshot>-<arch>. With --all, every alias of the catalog.",
    )
    parser.add_argument("alias", metavar="ALIAS", nargs="?", help="the catalog alias to push")
    parser.add_argument(
        "target",
        metavar="oci://REGISTRY/REPO",
        type=repository,
        help="the registry and repository to push to (no tag: each file is tagged "
        "<alias>-<snapshot>-<arch>)",
    )
    parser.add_argument(
        "--arch",
        metavar="A",
        type=arch,
        action="append",
        help="amd64, arm64, riscv64, ppc64le or s390x; repeatable (default: this machine's)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="D",
        type=directory,
        help="default: $PYIMAGECACHE_CACHE_DIR or the platform cache directory",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="push every alias of the catalog (those without an image for an arch are skipped)",
    )
    add_network_options(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from ..catalog import normalize_arch, resolve_catalog

    if args.all == (args.alias is not None):
        args.parser.error("give one ALIAS or --all")
    entries = resolve_catalog(None)
    names = sorted(entries) if args.all else [args.alias]
    if args.alias is not None and args.alias not in entries:
        from ..catalog import suggest
        from ..errors import UnknownImageError

        close = suggest(args.alias, entries)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see `pyimagecache list`)"
        raise UnknownImageError(f"{args.alias!r} is not a catalog alias{hint}")
    arches: List[str] = list(dict.fromkeys(args.arch or [normalize_arch()]))
    settings = settings_from(args)
    for name in names:
        for key in arches:
            if args.all and key not in entries[name].arch:
                _log("%s has no image for %s; skipped", name, key)
                continue
            print(push_alias(name, key, args.target, args.cache_dir, settings, args.quiet))
    return 0


def push_alias(
    alias: str, arch: str, target: Any, cache_dir: Optional[str], settings: Any, quiet: bool
) -> str:
    """Push one alias's file for one arch; return ``oci://REGISTRY/REPO:TAG@DIGEST``."""
    from ..cache import verified_source
    from ..cachefiles import cache_stem, url_basename
    from ..formats import detect_file
    from ..oci.push import push_file
    from ._progressbar import ProgressBar

    source, request = verified_source(alias, cache_dir, arch=arch, settings=settings)
    snapshot, key = str(request.snapshot), str(request.arch)
    tag = cache_stem(alias, snapshot, key)
    annotations: Dict[str, str] = {
        "org.opencontainers.image.source": request.url,
        "org.opencontainers.image.version": snapshot,
        "org.pyimagecache.alias": alias,
        "org.pyimagecache.snapshot": snapshot,
        "org.pyimagecache.arch": key,
        "org.pyimagecache.format": detect_file(source),
    }
    for algorithm, value in request.expected.items():
        annotations[f"org.pyimagecache.{algorithm}"] = value
    bar = None if quiet else ProgressBar(f"push {tag}", log_when_not_tty=True)
    try:
        digest = push_file(
            source,
            target,
            tag=tag,
            title=url_basename(request.url) or source.name,
            annotations=annotations,
            expected=request.expected,
            settings=settings,
            progress=bar,
        )
    finally:
        if bar is not None:
            bar.close()
    return f"{target.with_tag(tag)}@{digest}"
