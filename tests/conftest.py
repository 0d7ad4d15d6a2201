"""Shared fixtures. In CI (CI=true) a missing external tool is a failure, not a skip."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Iterator, List, Optional

import pytest

#: Holds linux_calls.py and the sitecustomize.py that hides those calls in Python children.
HIDECALLS_DIR = Path(__file__).resolve().parent / "hidecalls"
_hidden_key = pytest.StashKey[List[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hide-linux-calls",
        action="store_true",
        help="remove the Linux-only os and fcntl calls (copy_file_range, posix_fadvise, ...; "
        "tests/hidecalls/linux_calls.py) before pyimagecache is imported, here and in every "
        "Python child, so that the fallbacks macOS takes run",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hide_linux_calls"):
        return
    early = sorted(m for m in sys.modules if m == "pyimagecache" or m.startswith("pyimagecache."))
    if early:
        # What a module looked up at import would stay visible: the run would prove nothing.
        raise pytest.UsageError(f"--hide-linux-calls: {early[0]} was imported before conftest")
    from hidecalls.linux_calls import hide

    config.stash[_hidden_key] = hide()
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HIDECALLS_DIR), *([path] if path else [])])


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    hidden = config.stash.get(_hidden_key, None)
    if hidden is None:
        return None
    return "hidden Linux-only calls: " + (", ".join(hidden) or "none (this OS has none)")


def linux_calls_hidden(config: pytest.Config) -> bool:
    """True in a run with --hide-linux-calls: a test of Linux-only behaviour checks the
    fallback instead."""
    return bool(config.getoption("hide_linux_calls"))


def require_tool(name: str) -> str:
    """Path of an external tool; skip locally without it, fail in CI where .ci/run installs it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI (.ci/run installs it)")
    pytest.skip(f"{name} not installed")


@contextlib.contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    """Raise TimeoutError in the test (SIGALRM) when its body runs past ``seconds``: a reader
    that hangs fails its test instead of the whole run."""

    def expired(signum: int, frame: Optional[FrameType]) -> None:
        raise TimeoutError(f"no answer within {seconds} s: {what}")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
