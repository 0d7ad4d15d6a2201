"""Progress display for long operations, on stderr.

On a terminal: one self-rewriting line per stage with percentage, rate and ETA, counted in
bytes of real work (data fetched, decompressed or copied; holes cost nothing and count for
nothing). Every line fits the terminal's width, asked again at each redraw (so a resize is
honoured at the next one): the bar narrows, then goes; a long label is shortened in its
middle, as pip and curl do; the least useful fields go first (the ETA, then the rate, the
byte counts) when even that is not enough. A line that wrapped could not be redrawn in place.
Elsewhere either nothing (convert) or a plain log line every few seconds (downloads, where CI
logs want a heartbeat).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, TextIO, Tuple

from ._output import human_bytes

#: Columns assumed when the terminal does not say (a pseudo-terminal of size 0x0).
DEFAULT_COLUMNS = 80
#: A label is not shortened below this many columns while a field can still be dropped.
MIN_LABEL = 16
BAR_WIDTH = 24
MIN_BAR = 10
#: A label is not shortened below this many columns to make room for a bar.
LABEL_BESIDE_BAR = 24
#: Stage names are padded to this width, so that their lines align.
STAGE_WIDTH = len("download")
#: Fields dropped, in this order, when a line is still too wide with a short label (the bar
#: goes before any of them: it only takes what room is left).
DROP_ORDER = ("eta", "rate", "bytes")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to, asked now (one ioctl): a resize is
    seen at the next call."""
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a real terminal (a test's StringIO)
        return DEFAULT_COLUMNS
    return width or DEFAULT_COLUMNS


def cells(text: str) -> int:
    """Terminal columns ``text`` takes (East Asian wide characters take two)."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: str, width: int) -> str:
    """The longest prefix of ``text`` that fits ``width`` columns."""
    out: List[str] = []
    used = 0
    for c in text:
        used += cells(c)
        if used > width:
            break
        out.append(c)
    return "".join(out)


def shorten(label: str, width: int, ellipsis: str = "…") -> str:
    """``label`` in at most ``width`` columns, its middle replaced by ``ellipsis`` when too
    long (the start and the end of a name say most).

    >>> shorten("ubuntu-24.04-server-cloudimg-amd64.img", 20)
    'ubuntu-24.…amd64.img'
    >>> shorten("debian-12", 20)
    'debian-12'
    """
    if cells(label) <= width:
        return label
    room = width - cells(ellipsis)
    if room < 2:
        return _cut(label, width)
    head = _cut(label, room - room // 2)
    tail = _cut(label[::-1], room // 2)[::-1]
    return head + ellipsis + tail


def _ellipsis_for(stream: TextIO) -> str:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "…".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "..."
    return "…"


def bar(frac: float, width: int) -> str:
    """A bar of ``width`` cells, brackets included, filled to ``frac``.

    >>> bar(0.5, 12)
    '[#####.....]'
    """
    inner = width - 2
    filled = int(min(max(frac, 0.0), 1.0) * inner)
    return f"[{'#' * filled}{'.' * (inner - filled)}]"


def fit(
    label: str,
    fields: Dict[str, str],
    width: int,
    ellipsis: str = "…",
    frac: Optional[float] = None,
) -> str:
    """One line of at most ``width`` columns: ``label``, a bar filled to ``frac`` (if given),
    then ``fields`` (name -> text, in order), two spaces apart. Fields go, in
    :data:`DROP_ORDER`, while the label would be narrower than MIN_LABEL; the bar takes what
    room is left, up to BAR_WIDTH (shortening the label, but not below LABEL_BESIDE_BAR), or
    is left out; then the label is shortened in its middle to fit.

    >>> fields = {"pct": "50.0%", "rate": "1.0 MiB/s"}
    >>> fit("debian-12", fields, 60, frac=0.5)
    'debian-12  [###########...........]  50.0%  1.0 MiB/s'
    >>> fit("debian-12", fields, 40, frac=0.5)
    'debian-12  [####.....]  50.0%  1.0 MiB/s'
    >>> fit("ubuntu-24.04-server-cloudimg-amd64.img", fields, 44, frac=0.5)
    'ubuntu-24.04-…mg-amd64.img  50.0%  1.0 MiB/s'
    >>> fit("ubuntu-24.04-server-cloudimg-amd64.img", fields, 30, frac=0.5)
    'ubuntu-24.0…g-amd64.img  50.0%'
    """
    kept = dict(fields)
    drops = [name for name in DROP_ORDER if name in kept]
    while True:
        rest = "".join("  " + text for text in kept.values())
        room = width - cells(rest)
        if room >= MIN_LABEL or cells(label) <= room or not drops:
            break
        del kept[drops.pop(0)]
    shown = cells(label)
    if frac is not None:
        spare = room - shown - 2  # two spaces before the bar
        if spare >= MIN_BAR:
            return label + "  " + bar(frac, min(BAR_WIDTH, spare)) + rest
        if room - MIN_BAR - 2 >= LABEL_BESIDE_BAR:
            short = shorten(label, room - MIN_BAR - 2, ellipsis)
            return short + "  " + bar(frac, MIN_BAR) + rest
    return _cut(shorten(label, max(room, 1), ellipsis) + rest, width)


class ProgressBar:
    """A ``progress(done, total)`` callback that draws on stderr; call ``close()`` at the end."""

    def __init__(
        self,
        label: str,
        *,
        prefix: str = "",
        stream: Optional[TextIO] = None,
        log_when_not_tty: bool = False,
        log_interval: float = 5.0,
    ) -> None:
        self.label = label
        self.prefix = prefix  # shown whole before the label (a stage's name)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log = log_when_not_tty and not self.tty
        self.log_interval = log_interval
        self.ellipsis = _ellipsis_for(self.stream)
        self.start = time.monotonic()
        self._last_log = self.start
        self._last_done = 0
        self._drawn = False

    def fields(self, done: int, total: Optional[int]) -> Dict[str, str]:
        """What the line says besides the label, in display order."""
        if done < self._last_done:
            self.start = time.monotonic()  # a new phase, or a download started over
        self._last_done = done
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = done / elapsed
        # Padded to their widest, so that a line keeps its layout from one redraw to the next.
        out: Dict[str, str] = {}
        if total:
            frac = min(done / total, 1.0)
            out["pct"] = f"{frac * 100:5.1f}%"
            out["bytes"] = f"{human_bytes(done):>10}/{human_bytes(total)}"
        else:
            out["bytes"] = f"{human_bytes(done):>10}"
        out["rate"] = f"{human_bytes(rate):>10}/s"
        if total:
            if done >= total:
                eta = "0:00"
            else:
                eta = _duration((total - done) / rate) if rate > 0 else "-:--"
            out["eta"] = f"ETA {eta:>8}"
        return out

    def line(self, done: int, total: Optional[int], width: Optional[int] = None) -> str:
        """The line for ``done`` of ``total``; fitted to ``width`` columns when given."""
        fields = self.fields(done, total)
        frac = min(done / total, 1.0) if total else None
        if width is None:
            shown = [self.label, *([bar(frac, BAR_WIDTH)] if frac is not None else [])]
            return self.prefix + "  ".join((*shown, *fields.values()))
        room = max(width - cells(self.prefix), MIN_LABEL)  # narrower still: cut at the end
        return _cut(self.prefix + fit(self.label, fields, room, self.ellipsis, frac), width)

    def __call__(self, done: int, total: Optional[int]) -> None:
        if self.tty:
            # One column spare: writing the last one makes some terminals wrap at once.
            line = self.line(done, total, columns(self.stream) - 1)
            self.stream.write("\r\x1b[K" + line)
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
                    self.label,
                    prefix=f"{name:<{STAGE_WIDTH}} ",  # stages aligned, never shortened
                    stream=self.stream,
                    log_when_not_tty=True,
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
        # Back to the first line drawn, then every stage's line, each cleared first. Lines
        # fit the width asked now, so none wraps and the cursor-up count stays right.
        width = columns(self.stream) - 1
        out = "\r" + "\x1b[1A" * max(self._lines - 1, 0)
        lines = [
            self._bars[n].line(*self._state[n], width=width) for n in self._bars if n in self._state
        ]
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
