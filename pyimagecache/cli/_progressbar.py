"""Progress display for long operations, on stderr.

On a terminal: one self-rewriting line per stage with percentage, rate and ETA, counted in
bytes of real work (data fetched, decompressed or copied; holes cost nothing and count for
nothing). Otherwise either nothing (convert) or a plain log line every few seconds (downloads,
where CI logs want a heartbeat).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Dict, Optional, TextIO, Tuple

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


class StageBars:
    """Several stages of one job that run at once (download and convert), one line each on a
    terminal, redrawn together; elsewhere each logs on its own, as a ProgressBar does.

    Callbacks may come from several threads (the download runs on its own), so drawing is
    serialised by a lock. Call ``close()`` at the end.
    """

    def __init__(self, label: str, *, stream: Optional[TextIO] = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bars: Dict[str, ProgressBar] = {}
        self._state: Dict[str, Tuple[int, Optional[int]]] = {}
        self._lock = threading.Lock()
        self._lines = 0

    def stage(self, name: str) -> Callable[[int, Optional[int]], None]:
        """The progress callback of stage ``name`` (made once; asking again returns it)."""
        with self._lock:
            bar = self._bars.get(name)
            if bar is None:
                bar = self._bars[name] = ProgressBar(
                    f"{name} {self.label}", stream=self.stream, log_when_not_tty=True
                )

        def report(done: int, total: Optional[int]) -> None:
            if not self.tty:
                with self._lock:
                    bar(done, total)
                return
            with self._lock:
                self._state[name] = (done, total)
                self._redraw()

        return report

    def _redraw(self) -> None:
        # Back to the first line drawn, then every stage's line, each cleared first.
        out = "\r" + "\x1b[1A" * max(self._lines - 1, 0)
        lines = [self._bars[n].line(*self._state[n]) for n in self._bars if n in self._state]
        out += "\n".join("\x1b[K" + line for line in lines)
        self._lines = len(lines)
        self.stream.write(out)
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._lines:
                self.stream.write("\n")
                self.stream.flush()
                self._lines = 0
