"""The argument parser: one module per command group registers its subcommands.

Imported only when a command line is not answered by a fast path (see
:mod:`pyimagecache.cli._hit`): argparse alone costs more than a whole cache hit.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any, List, Optional, Sequence, Tuple

from .. import __version__

# Modules under pyimagecache.cli, each registering one or more subcommands.
COMMAND_MODULES = [
    "image_cmds",  # convert, info
    "fetch_cmd",  # fetch
    "cache_cmds",  # list, ensure, copy, cache list/prune/verify
    "catalog_cmds",  # catalog refresh/check
    "oci_cmds",  # push
]

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
        importlib.import_module(f".{name}", __package__).register(sub)
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
