"""Shared fixtures. In CI (CI=true) a missing external tool is a failure, not a skip."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from types import FrameType
from typing import Iterator, Optional

import pytest


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
