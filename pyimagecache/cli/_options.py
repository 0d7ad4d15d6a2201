"""Options several commands share: the network settings ``fetch`` and ``ensure`` both take."""

from __future__ import annotations

import argparse
from typing import Any

from ._types import count, existing_file, mirror, seconds


def add_network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="longest wait to connect or for the next chunk (default: 30 to connect, 60 to read)",
    )
    parser.add_argument(
        "--retries",
        type=count,
        metavar="N",
        help="retries within this run after a failed attempt (default 5)",
    )
    parser.add_argument(
        "--ca-bundle",
        type=existing_file,
        metavar="FILE",
        help="CA certificates to trust instead of the system's",
    )


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """Where ensure may fetch from, besides upstream."""
    parser.add_argument(
        "--mirror",
        dest="mirrors",
        action="append",
        type=mirror,
        metavar="BASE",
        help="try BASE first (http(s)://, file:// or oci://REGISTRY/REPO; repeatable; "
        "default: $PYIMAGECACHE_MIRRORS)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never contact upstream, only the mirrors (default: $PYIMAGECACHE_OFFLINE)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="when a pinned snapshot is gone upstream, fail instead of using the newest one "
        "(default: $PYIMAGECACHE_STRICT)",
    )


def settings_from(args: argparse.Namespace) -> Any:
    """The library's Settings: the environment's, then what the command line says."""
    from ..settings import Settings

    timeout = None if args.timeout is None else (min(args.timeout, 30.0), args.timeout)
    return Settings.from_environment().overridden(
        timeout=timeout,
        retries=args.retries,
        ca_bundle=args.ca_bundle,
        mirrors=getattr(args, "mirrors", None),
        offline=getattr(args, "offline", None),
        offline_from="--offline" if getattr(args, "offline", None) else None,
        strict=getattr(args, "strict", None),
    )
