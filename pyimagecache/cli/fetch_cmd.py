"""``pyimagecache fetch URL DEST [--sha256 HEX]``: one resumable, verified download."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fetch",
        help="download a URL to a file, resumably, optionally verifying its SHA-256",
        description="Download URL (http, https, file:// or a path) to DEST. An interrupted "
        "download resumes on the next run; with --sha256 a mismatch leaves DEST untouched.",
    )
    parser.add_argument("url", metavar="URL")
    parser.add_argument("dest", metavar="DEST")
    parser.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the file")
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS",
        help="longest wait to connect or for the next chunk (default 60)",
    )
    parser.add_argument(
        "--retries", type=int, default=5, metavar="N",
        help="retries within this run after a failed attempt (default 5)",
    )
    parser.add_argument(
        "--ca-bundle", metavar="FILE", help="CA certificates to trust instead of the system's"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..download import fetch
    from ._progressbar import ProgressBar

    bar = None if args.quiet else ProgressBar(Path(args.dest).name, log_when_not_tty=True)
    try:
        path = fetch(
            args.url,
            args.dest,
            sha256=args.sha256,
            progress=bar,
            timeout=(min(args.timeout, 30.0), args.timeout),
            retries=args.retries,
            ca_bundle=args.ca_bundle,
        )
    finally:
        if bar is not None:
            bar.close()
    print(path)
    return 0
