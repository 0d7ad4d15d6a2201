"""``pyimagecache fetch URL DEST [--sha256 HEX]``: one resumable, verified download."""

from __future__ import annotations

import argparse
from typing import Any

from ._options import add_network_options, settings_from
from ._types import digest


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fetch",
        help="download a URL to a file, resumably, optionally verifying its digest",
        description="Download URL (http, https, file:// or a path) to DEST. An interrupted "
        "download resumes on the next run when the server allows it; with --sha256 or "
        "--sha512 a mismatch leaves DEST untouched, and a DEST that already has the digest "
        "is left as it is, without a request.",
    )
    parser.add_argument("url", metavar="URL", help="http(s)://, file:// or a local path")
    parser.add_argument(
        "dest",
        metavar="DEST",
        help="the file to write (replaced only once complete and verified); DEST.part holds "
        "the bytes so far",
    )
    parser.add_argument(
        "--sha256",
        type=digest("sha256"),
        metavar="HEX",
        help="expected SHA-256 of the file (hex, or sha256:HEX); when DEST already has it, "
        "nothing is downloaded",
    )
    parser.add_argument(
        "--sha512",
        type=digest("sha512"),
        metavar="HEX",
        help="expected SHA-512 of the file (hex, or sha512:HEX); when DEST already has it, "
        "nothing is downloaded",
    )
    add_network_options(parser)
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress output, only warnings and errors"
    )
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
            sha512=args.sha512,
            progress=bar,
            settings=settings_from(args),
        )
    finally:
        if bar is not None:
            bar.close()
    print(path)
    return 0
