"""Progress display for long operations, on stderr.

On a terminal: one self-rewriting line with percentage, rate and ETA. Otherwise either nothing
(convert) or a plain log line every few seconds (downloads, where CI logs want a heartbeat).
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from ._output import human_bytes


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """A ``progress(done, total)`` callback that draws on stderr; call ``close()`` at the end."""

    def __init__(
        self,
        label: str,
        *,
        stream: Optional[TextIO] = None,
        log_when_not_tty: bool = False,
        log_interval: float = 5.0,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log = log_when_not_tty and not self.tty
        self.log_interval = log_interval
        self.start = time.monotonic()
        self._last_log = self.start
        self._drawn = False

    def line(self, done: int, total: Optional[int]) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = done / elapsed
        parts = [self.label]
        if total:
            frac = min(done / total, 1.0)
            width = 24
            fill = int(frac * width)
            parts.append(f"[{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}%")
            parts.append(f"{human_bytes(done)}/{human_bytes(total)}")
        else:
            parts.append(human_bytes(done))
        parts.append(f"{human_bytes(rate)}/s")
        if total and rate > 0 and done < total:
            parts.append(f"ETA {_duration((total - done) / rate)}")
        return "  ".join(parts)

    def __call__(self, done: int, total: Optional[int]) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line(done, total))
            self.stream.flush()
            self._drawn = True
        elif self.log:
            now = time.monotonic()
            if now - self._last_log >= self.log_interval:
                self._last_log = now
                self.stream.write(self.line(done, total) + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
