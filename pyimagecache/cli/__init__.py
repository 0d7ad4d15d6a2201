"""The ``pyimagecache`` command line.

Each command group lives in its own module with a ``register(subparsers)`` function
(:mod:`._parser` builds them); handlers import the library lazily. ``--version`` and an
``ensure`` that finds its disk in the cache are answered before argparse is even imported
(:mod:`._hit`): they are the commands that start most often.
"""

from __future__ import annotations

import os
import sys

from .. import __version__

# Nothing heavy at import: `pyimagecache --version` and a cache hit run through here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Callable, Optional, Sequence

    Handler = Callable[[argparse.Namespace], int]


class Terminated(BaseException):
    """SIGTERM, turned into an exception like SIGINT's KeyboardInterrupt, so that the same
    cleanup runs (temporary files removed, partial downloads kept for resume)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    """The whole command line's parser (every command registered)."""
    from ._parser import build_parser as build

    return build()


def main(argv: Optional[Sequence[str]] = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # The two commands whose start-up is most of their time are answered before argparse
    # and the library are imported; anything else, or anything unusual, takes the full path.
    if words == ["--version"]:
        print(f"pyimagecache {__version__}")
        return 0
    if words[:1] == ["ensure"]:
        from ._hit import ensure_hit

        found = ensure_hit(words[1:])
        if found is not None:
            try:
                print(found, flush=True)
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            return 0
    return _main(words)


def _main(argv: Sequence[str]) -> int:
    import signal

    from ..errors import ImageCacheError

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
    from ..errors import ImageCacheError

    if isinstance(exc, OSError) and not isinstance(exc, ImageCacheError):
        # A file name may hold a newline or other control characters: escape them.
        where = f": {printable(str(exc.filename))}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__


def printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
