"""What the command line says and accepts: help on every argument, --debug and -q wherever they
make sense, usage errors with the subcommand's own usage, values checked while parsing, and
interruption messages that speak only of what is true."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from faultserver import FaultServer

from pyimagecache.cli import build_parser

MiB = 1 << 20


def cli(*args: str, env: Any = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagecache", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def walk(parser: argparse.ArgumentParser, path: Tuple[str, ...] = ()) -> Iterator[Any]:
    """(command path, parser, action) for every argument of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if a.help}
            for name, sub in action.choices.items():
                yield (*path, name), sub, ("choice", name in helped)
                yield from walk(sub, (*path, name))
        else:
            yield path, parser, action


def test_every_command_and_argument_has_help() -> None:
    missing: List[str] = []
    count = 0
    for path, _, action in walk(build_parser()):
        count += 1
        if isinstance(action, tuple):
            if not action[1]:
                missing.append(f"{' '.join(path)} (the command itself)")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert count > 60  # the whole tree was walked
    assert not missing, missing


def leaf_commands() -> List[Tuple[str, ...]]:
    return [
        path
        for path, sub, action in walk(build_parser())
        if isinstance(action, tuple) and "func" in sub._defaults
    ]


@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_debug_is_accepted_after_every_command(path: Tuple[str, ...]) -> None:
    parser = build_parser()
    options = {o for a in parser._subparsers._actions for o in getattr(a, "option_strings", ())}
    assert "--debug" in options
    sub = parser
    for name in path:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[
            name
        ]
    assert "--debug" in sub._option_string_actions, path


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, PYIMAGECACHE_CACHE_DIR=str(tmp_path))
    plain = cli("ensure", "no-such-alias", env=env)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    for argv in (["ensure", "no-such-alias", "--debug"], ["--debug", "ensure", "no-such-alias"]):
        debug = cli(*argv, env=env)
        assert debug.returncode == 1, debug
        assert "Traceback" in debug.stderr and "UnknownImageError" in debug.stderr


@pytest.mark.parametrize(
    "argv, usage",
    [
        (["ensure", "debian-12", "--bogus"], "usage: pyimagecache ensure "),
        (["ensure", "--bogus", "debian-12"], "usage: pyimagecache ensure "),
        (["cache", "list", "--bogus"], "usage: pyimagecache cache list "),
        (["fetch", "http://127.0.0.1:9/x", "d", "extra"], "usage: pyimagecache fetch "),
        (["convert", "a", "b", "-x"], "usage: pyimagecache convert "),
        (["--bogus", "list"], "usage: pyimagecache [-h]"),
    ],
)
def test_usage_errors_show_the_subcommands_usage(argv: List[str], usage: str) -> None:
    proc = cli(*argv)
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert proc.stderr.startswith(usage), proc.stderr
    assert "unrecognized arguments: " in proc.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["ensure", "debian-12", "--arch", "sparc"],
        ["ensure", "https://example.invalid/x.raw", "--arch", "sparc"],
        ["ensure", "file:///nonexistent/x.raw", "--arch", "i386"],
        ["ensure", "oci://quay.io/containerdisks/fedora:43", "--arch", "mips"],
        ["push", "debian-12", "oci://127.0.0.1:9/r", "--arch", "sparc"],
        ["ensure", "debian-12", "--cache-dir", ""],
        ["ensure", "https://example.invalid/x.raw", "--cache-dir", " "],
        ["cache", "list", "--cache-dir", ""],
        ["cache", "prune", "--cache-dir", ""],
        ["push", "debian-12", "oci://127.0.0.1:9/r", "--cache-dir", ""],
    ],
    ids=lambda a: " ".join(x or "''" for x in a),
)
def test_arch_and_cache_dir_are_checked_while_parsing(argv: List[str]) -> None:
    proc = cli(*argv)
    assert proc.returncode == 2, proc
    last = proc.stderr.strip().splitlines()[-1]
    assert "argument --arch: unknown arch" in last or "argument --cache-dir: must not be" in last


def test_an_arch_of_another_spelling_is_accepted_for_a_url(tmp_path: Path) -> None:
    src = tmp_path / "disk.img"
    src.write_bytes(b"\xeb\x63\x90" + bytes(MiB - 3))  # a disk: a whole number of sectors
    proc = cli("ensure", src.as_uri(), "--arch", "x86_64", "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == 0, proc
    assert Path(proc.stdout.strip()).read_bytes() == src.read_bytes()


@pytest.mark.parametrize("command", ["ensure", "fetch", "push", "convert"])
def test_quiet_on_every_command_that_draws_progress(command: str) -> None:
    positional = {"ensure": ["x"], "fetch": ["u", "d"], "push": ["a", "oci://r.io/x"]}
    for flag in ("-q", "--quiet"):
        args = build_parser().parse_args(
            [command, *positional.get(command, ["a", "b"]), flag, "--debug"]
        )
        assert args.quiet is True and args.debug is True


# -- what an interruption says -----------------------------------------------------------------


def interrupted(
    argv: List[str], until: Any, signum: int = signal.SIGINT, env: Optional[dict] = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI, send ``signum`` once ``until()`` is true, return what it said."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyimagecache", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while not until():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def slow() -> Iterator[FaultServer]:
    with FaultServer(os.urandom(4 * MiB), rate=1 * MiB) as server:
        yield server


def grew(path: Path) -> Any:
    return lambda: path.exists() and path.stat().st_size > 0


@pytest.mark.parametrize(
    "signum, word, code", [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143)]
)
def test_an_interrupted_fetch_names_the_partial_it_resumes_from(
    slow: FaultServer, tmp_path: Path, signum: int, word: str, code: int
) -> None:
    dest = tmp_path / "disk.img"
    part = tmp_path / "disk.img.part"
    proc = interrupted(["fetch", slow.url, str(dest), "-q"], grew(part), signum)
    assert proc.returncode == code, proc
    assert proc.stderr.splitlines() == [f"pyimagecache: {word}; the next run resumes from {part}"]
    assert part.stat().st_size > 0 and not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.img.part", "disk.img.part.meta"]


def test_an_interrupted_fetch_that_cannot_resume_says_nothing_of_it(tmp_path: Path) -> None:
    # No ETag, no Last-Modified: the next run starts over, so no resume is promised.
    with FaultServer(os.urandom(4 * MiB), rate=1 * MiB, etag=False, last_modified=False) as server:
        part = tmp_path / "disk.img.part"
        proc = interrupted(["fetch", server.url, str(tmp_path / "disk.img"), "-q"], grew(part))
    assert proc.returncode == 130 and proc.stderr.splitlines() == ["pyimagecache: interrupted"]


def test_an_interrupted_ensure_names_the_partial_in_the_cache(
    slow: FaultServer, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    parts = lambda: list(cache.glob("*.part"))  # noqa: E731
    proc = interrupted(
        ["ensure", slow.url, "--cache-dir", str(cache), "-q"],
        lambda: bool(parts()) and parts()[0].stat().st_size > 0,
    )
    assert proc.returncode == 130, proc
    (part,) = parts()
    assert proc.stderr.splitlines() == [
        f"pyimagecache: interrupted; the next run resumes from {part}"
    ]


def test_an_interrupted_convert_speaks_of_no_download(tmp_path: Path) -> None:
    fifo = tmp_path / "disk.img"
    os.mkfifo(fifo)  # opening it blocks until a writer comes: the convert is stuck reading
    started = time.monotonic()
    proc = interrupted(
        ["convert", str(fifo), str(tmp_path / "out.raw")], lambda: time.monotonic() > started + 1
    )
    assert proc.returncode == 130 and proc.stderr.splitlines() == ["pyimagecache: interrupted"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.img"]


def test_a_failed_download_promises_a_resume_only_when_there_is_one(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    with FaultServer(data) as server:
        server.schedule("short:100000", "500", "500")
        proc = cli("fetch", server.url, str(tmp_path / "a.img"), "--retries", "1")
        assert proc.returncode == 1
        assert proc.stderr.strip().endswith(f"the next call resumes from {tmp_path}/a.img.part")
        server.schedule("500", "500")  # nothing kept: nothing to resume from
        proc = cli("fetch", server.url, str(tmp_path / "b.img"), "--retries", "1")
        assert proc.returncode == 1 and "resumes" not in proc.stderr, proc.stderr
    with FaultServer(data, etag=False, last_modified=False) as server:
        server.schedule("short:100000", "500", "500")  # bytes kept, but no validator
        proc = cli("fetch", server.url, str(tmp_path / "c.img"), "--retries", "1")
        assert proc.returncode == 1 and "resumes" not in proc.stderr, proc.stderr
