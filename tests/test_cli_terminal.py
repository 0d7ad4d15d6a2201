"""What the command line draws on a terminal, read from a real pseudo-terminal of a set size:
progress lines that fit and are redrawn in place (also after a resize), and the line a second
``ensure`` prints while another process holds the entry."""

from __future__ import annotations

import fcntl
import gzip
import os
import random
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest
from faultserver import FaultServer

from pyimagecache._lock import FileLock
from pyimagecache.cachefiles import url_names
from pyimagecache.cli._progressbar import cells

MiB = 1 << 20
#: A name wider than any terminal here: the label must be shortened.
LONG_PATH = "/images/" + "appliance-with-a-very-long-release-name-" * 3 + "amd64.img.gz"
_CSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def set_size(fd: int, columns: int, rows: int = 24) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class Terminal:
    """A command run with its stderr on a pseudo-terminal of ``columns`` columns (stdout is a
    pipe, as in ``disk=$(pyimagecache ensure ...)``); what it draws is collected as it comes."""

    def __init__(self, argv: List[str], columns: int, env: Optional[dict] = None) -> None:
        self.master, self.slave = os.openpty()
        set_size(self.slave, columns)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyimagecache", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.slave,
            env=env,
        )
        os.close(self.slave)
        self._chunks: List[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    @property
    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def resize(self, columns: int) -> None:
        set_size(self.master, columns)

    def wait_for(self, predicate: Callable[[str], bool], seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = self.text
            if predicate(text):
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"not drawn within {seconds} s: {self.text!r}")

    def finish(self, seconds: float = 60) -> str:
        out, _ = self.proc.communicate(timeout=seconds)
        self._reader.join(10)
        os.close(self.master)
        assert self.proc.returncode == 0, self.text
        return out.decode()


def segments(text: str) -> List[str]:
    """What each redraw left on a terminal row: the text between carriage returns and line
    feeds, without the cursor and erase sequences."""
    return [_CSI.sub("", part) for part in re.split(r"[\r\n]", text) if _CSI.sub("", part)]


def progress_segments(text: str) -> List[str]:
    return [s for s in segments(text) if not s.startswith("pyimagecache: ")]


@pytest.fixture
def slow_server() -> FaultServer:
    # Incompressible, so that gzip does not shrink it: about 3 s of download at 1.5 MiB/s.
    data = gzip.compress(random.Random(7).randbytes(4 * MiB), compresslevel=1)
    server = FaultServer(data, rate=1.5 * MiB)
    server.path = LONG_PATH
    yield server
    server.close()


@pytest.mark.parametrize("columns", [60, 80])
def test_progress_lines_fit_and_redraw_in_place(
    slow_server: FaultServer, tmp_path: Path, columns: int
) -> None:
    term = Terminal(["ensure", slow_server.url, "--cache-dir", str(tmp_path / "c")], columns)
    out = term.finish()
    assert out.strip().endswith(".raw")
    drawn = progress_segments(term.text)
    assert len(drawn) >= 5, term.text  # redrawn several times, not printed once
    assert any(s.startswith("download ") for s in drawn), drawn
    too_wide = [s for s in drawn if cells(s) > columns - 1]
    assert not too_wide, too_wide
    assert all("…" in s or "..." in s for s in drawn), drawn  # the long label, shortened
    # In place: each redraw starts with a carriage return, never a new line of its own.
    body = term.text.split("\n", 1)[1] if term.text.startswith("pyimagecache: ") else term.text
    assert body.count("\r") >= len(drawn) - 2, body


def test_a_resize_is_honoured_at_the_next_redraw(slow_server: FaultServer, tmp_path: Path) -> None:
    term = Terminal(["ensure", slow_server.url, "--cache-dir", str(tmp_path / "c")], 100)
    first = term.wait_for(lambda t: len(progress_segments(t)) >= 3)
    assert max(cells(s) for s in progress_segments(first)) > 60  # room used while there was
    term.resize(50)
    time.sleep(0.5)  # a redraw in flight may still be the old width
    mark = len(term.text)
    term.finish()
    after = progress_segments(term.text[mark:])
    assert after, term.text[mark:]
    assert max(cells(s) for s in after) <= 49, after


def test_a_second_ensure_says_once_what_it_waits_for(tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    src.write_bytes(b"\xeb\x63\x90" + bytes(MiB - 3))  # a whole number of sectors
    url, cache = src.as_uri(), tmp_path / "c"
    cache.mkdir()
    holder = FileLock(cache / url_names(url).lock)  # as the first ensure would
    holder.acquire()
    try:
        term = Terminal(["ensure", url, "--cache-dir", str(cache)], 80)
        text = term.wait_for(lambda t: "waiting for" in t)
        time.sleep(0.3)
    finally:
        holder.release()
    out = term.finish()
    assert out.strip().endswith(".raw")
    lines = [s for s in segments(term.text) if "waiting" in s]
    assert lines == [
        f"pyimagecache: waiting for {url}, which process {os.getpid()} is already preparing"
    ], text


def test_no_waiting_line_or_progress_when_quiet_or_not_on_a_terminal(
    slow_server: FaultServer, tmp_path: Path
) -> None:
    src = tmp_path / "disk.img"
    src.write_bytes(b"\xeb\x63\x90" + bytes(MiB - 3))  # a whole number of sectors
    url, cache = src.as_uri(), tmp_path / "c"
    cache.mkdir()
    holder = FileLock(cache / url_names(url).lock)
    holder.acquire()
    try:
        quiet = Terminal(["ensure", url, "--cache-dir", str(cache), "-q"], 80)
        piped = subprocess.Popen(
            [sys.executable, "-m", "pyimagecache", "ensure", url, "--cache-dir", str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)
    finally:
        holder.release()
    quiet.finish()
    _, err = piped.communicate(timeout=60)
    assert "waiting for" not in quiet.text and "waiting for" not in err.decode()
    assert quiet.text == ""  # -q: not even the info lines
    # -q on a download: no progress line either.
    term = Terminal(["ensure", slow_server.url, "--cache-dir", str(tmp_path / "d"), "-q"], 80)
    term.finish()
    assert term.text == ""
