"""argparse ``type=`` functions: every command-line value is checked while parsing, so a bad one
is a usage error (one line, exit 2), never a traceback from deep inside the library."""

from __future__ import annotations

import argparse
from typing import Callable


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--workers``).

    >>> positive_int("4")
    4
    """
    return _whole(text, 1)


def count(text: str) -> int:
    """A whole number >= 0 (``--retries``)."""
    return _whole(text, 0)


def seconds(text: str) -> float:
    """A positive number of seconds (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def digest(algorithm: str) -> Callable[[str], str]:
    """A hex digest of ``algorithm``, validated by the hashing module (one rule everywhere)."""

    def parse(text: str) -> str:
        from ..errors import DigestError
        from ..hashing import parse_digest

        try:
            return parse_digest(text, algorithm)
        except DigestError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = algorithm
    return parse


def size(text: str) -> int:
    """Bytes, or a number with K, M, G, T or P (``--size 20G``)."""
    from ..diskcopy import parse_size
    from ..errors import DiskCopyError

    try:
        return parse_size(text)
    except DiskCopyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def existing_file(text: str) -> str:
    import os

    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return text


def mirror(text: str) -> str:
    """A mirror base (``--mirror``), checked as the library checks ``PYIMAGECACHE_MIRRORS``."""
    from ..mirrors import check_mirror

    try:
        return check_mirror(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def arch(text: str) -> str:
    """A catalog arch key (``--arch``); ``platform.machine()`` spellings (x86_64, aarch64...)
    are accepted as the library accepts them.

    >>> arch("x86_64")
    'amd64'
    """
    from ..arches import ARCHES, normalize_arch

    key = normalize_arch(text)
    if key not in ARCHES:
        raise argparse.ArgumentTypeError(f"unknown arch {text!r} (known: {', '.join(ARCHES)})")
    return key


def directory(text: str) -> str:
    """A directory to use (``--cache-dir``): any path but the empty one, which would silently
    mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave it out for the default)")
    return text
