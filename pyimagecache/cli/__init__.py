"""The ``pyimagecache`` command line.

Each command group lives in its own module with a ``register(subparsers)`` function; handlers
import the library lazily so that ``pyimagecache ensure`` on a cache hit stays well under 150 ms.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .. import __version__
from ..errors import ImageCacheError

# Modules under pyimagecache.cli, each registering one or more subcommands.
COMMAND_MODULES = [
    "image_cmds",  # convert, info
    "fetch_cmd",  # fetch
    "cache_cmds",  # list, ensure, copy, cache list/prune
    "catalog_cmds",  # catalog refresh/check
    "oci_cmds",  # push
]

Handler = Callable[[argparse.Namespace], int]


class Terminated(BaseException):
    """SIGTERM, turned into an exception like SIGINT's KeyboardInterrupt, so that the same
    cleanup runs (temporary files removed, partial downloads kept for resume)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


DEBUG_HELP = "show tracebacks and debug logs"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands report an argument they do not know themselves,
    with their own usage (argparse leaves it to the top-level parser, whose usage says
    nothing of the subcommand's options)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Optional[Sequence[str]] = None, namespace: Optional[argparse.Namespace] = None
    ) -> Tuple[argparse.Namespace, List[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="pyimagecache",
        description="Pinned cloud images as verified, cached raw VM disks.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(sub)
    _debug_everywhere(sub)
    return parser


def _debug_everywhere(sub: Any) -> None:
    """``--debug`` after the command name too (``pyimagecache ensure x --debug``); SUPPRESS
    keeps a subcommand that was not given it from resetting what came before its name."""
    for command in dict.fromkeys(sub.choices.values()):  # an alias is the same parser
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
        )
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _debug_everywhere(action)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    if args.debug or getattr(args, "logs", True):
        # Commands that never log (convert, info) skip importing logging: ~8 ms per run.
        import logging

        level = logging.DEBUG if args.debug else logging.WARNING if quiet else logging.INFO
        logging.basicConfig(level=level, format="pyimagecache: %(message)s", stream=sys.stderr)
    handler: Handler = args.func
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"pyimagecache: interrupted{_kept_partials()}", file=sys.stderr)
        return 130
    except Terminated:
        if args.debug:
            raise
        print(f"pyimagecache: terminated{_kept_partials()}", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # The reader went away (`pyimagecache list | head`): not an error worth a message.
        # Point stdout at /dev/null so that the interpreter's final flush fails silently too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ImageCacheError, OSError, ValueError) as exc:
        # ValueError: a value the parser could not judge alone (e.g. an environment setting).
        if args.debug:
            raise
        print(f"pyimagecache: error: {describe(exc)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _kept_partials() -> str:
    """What an interrupted run leaves for the next one: the partial downloads it wrote that
    the next run resumes from (none for a command that downloads nothing)."""
    module = sys.modules.get("pyimagecache.download.to_file")
    if module is None:
        return ""  # nothing was downloaded (convert, info, copy, a cache hit)
    kept = [p for p in module.partials_started() if module.resumable(p)]
    if not kept:
        return ""
    return "; the next run resumes from " + ", ".join(printable(str(p)) for p in kept)


def describe(exc: BaseException) -> str:
    """One line for an error: OSError gets its filename, everything else its message."""
    if isinstance(exc, OSError) and not isinstance(exc, ImageCacheError):
        # A file name may hold a newline or other control characters: escape them.
        where = f": {printable(str(exc.filename))}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__


def printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
