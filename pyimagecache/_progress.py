"""Rate-limit progress callbacks so that a hot loop can report every chunk cheaply."""

from __future__ import annotations

import time
from typing import Callable, Optional

#: ``progress(done, total)``; total is None when unknown (a download without Content-Length).
ProgressCallback = Callable[[int, Optional[int]], None]


class Throttle:
    """Forward at most one call per ``interval`` seconds, plus the final one."""

    def __init__(self, callback: Optional[ProgressCallback], interval: float = 0.1) -> None:
        self._callback = callback
        self._interval = interval
        self._next = 0.0

    def __call__(self, done: int, total: Optional[int], *, final: bool = False) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if final or now >= self._next:
            self._next = now + self._interval
            self._callback(done, total)
