#!/usr/bin/env python3
"""Time ``pyimagecache fetch --sha256`` against curl on a 1 GiB loopback transfer from nginx.

Generates a random file (``--size-mib``, default 1024) in a temp dir, serves it with nginx on
127.0.0.1 (tests/nginx.py), then runs, in alternating order, ``--runs`` times each:

- ``pyimagecache fetch URL DEST --sha256 HEX`` (hashes while writing, fsyncs, renames),
- ``curl -s -o DEST URL`` (no hashing),
- ``curl -s URL | sha256sum`` (hashing, nothing written),
- ``curl -s -o DEST URL && sync DEST`` (no hashing, but durable like fetch, which fsyncs before
  it renames: on a loopback transfer the disk's write speed, not the network, sets the pace).

Each run deletes the previous output and calls ``sync`` first. Wall time comes from the clock
around the process, peak RSS from its rusage (``os.wait4``; for the pipeline, the shell's, which
includes curl and sha256sum). Prints the medians, the median of the paired ratios, and checks
the bars: fetch at most 1.0x ``curl -o`` + ``sync`` (durable against durable) and at most 1.25x
plain ``curl -o``, peak RSS at most 64 MiB. Then the resume
check: a fetch killed at 50% and run again must transfer at most 50% + 1 MiB (from nginx's
access log).

A script, not a test::

    /work/venv/bin/python bench/bench_fetch.py --runs 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from nginx import Nginx, serve_dir  # noqa: E402

MIB = 1 << 20
#: Bars, against the contender named: like with like is curl -o followed by sync of the file
#: (fetch is durable: it fsyncs before publishing); plain curl -o never flushes.
BARS = {"curl -o": 1.25, "curl -o; sync": 1.0}
RSS_BAR_MIB = 64.0
TIMEOUT = 600


class Run(NamedTuple):
    wall: float
    rss_mib: float


def timed(argv: Sequence[str], **kwargs: object) -> Run:
    start = time.monotonic()
    proc = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
    return Run(wall, usage.ru_maxrss / 1024)


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


_API = (
    "import sys; from pyimagecache import fetch; "
    "fetch(sys.argv[1], sys.argv[2], sha256=sys.argv[3] or None)"
)


def fetch_argv(python: str, api: bool, url: str, dest: Path, digest: str) -> List[str]:
    """The command that downloads ``url`` to ``dest`` (checking ``digest`` unless empty)."""
    if api:
        return [python, "-c", _API, url, str(dest), digest]
    return [
        python,
        "-m",
        "pyimagecache",
        "fetch",
        "-q",
        *(["--sha256", digest] if digest else []),
        url,
        str(dest),
    ]


def check_resume(
    python: str, api: bool, url: str, dest: Path, digest: str, size: int, server: Nginx
) -> bool:
    """Kill a fetch at 50%, run it again, read what nginx sent the second time."""
    for leftover in dest.parent.glob(dest.name + "*"):
        leftover.unlink()
    server.clear_log()
    part = dest.with_name(dest.name + ".part")
    child = subprocess.Popen(fetch_argv(python, api, url, dest, ""))
    while not (part.exists() and part.stat().st_size >= size // 2):
        if child.poll() is not None:
            print("resume check: the download ended before 50%; use a larger --size-mib")
            return False
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.wait()
    held = part.stat().st_size
    argv = fetch_argv(python, api, url, dest, digest)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    second = server.access_log()[-1]
    ok = second.status == 206 and second.bytes <= size // 2 + MIB
    print(
        f"resume: killed at {held / MIB:.1f} MiB of {size / MIB:.0f}; the next run got "
        f"HTTP {second.status} for Range {second.range!r}, {second.bytes / MIB:.1f} MiB "
        f"(bar <= {(size // 2 + MIB) / MIB:.0f} MiB) {'OK' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, help="where the file and outputs go (temp dir)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for pyimagecache")
    parser.add_argument(
        "--api",
        action="store_true",
        help="run pyimagecache.fetch from python -c instead of the CLI (same code, no argparse)",
    )
    args = parser.parse_args()

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-fetch-") as tmp:
        work = Path(tmp)
        root = work / "www"
        root.mkdir()
        size = args.size_mib * MIB
        print(f"generating {args.size_mib} MiB of random data ...", flush=True)
        digest = make_file(root / "disk.img", size)
        out = work / "out"
        out.mkdir()
        dest = out / "disk.img"
        with serve_dir(root) as server:
            url = server.url("disk.img")
            commands: Dict[str, List[str]] = {
                "pyimagecache": fetch_argv(args.python, args.api, url, dest, digest),
                "curl -o": ["curl", "-s", "-o", str(dest), url],
                "curl|sha256sum": ["sh", "-c", f"curl -s '{url}' | sha256sum"],
                # Like for like: fetch fsyncs before publishing, curl -o never does.
                "curl -o; sync": ["sh", "-c", f"curl -s -o '{dest}' '{url}' && sync '{dest}'"],
            }
            for argv in commands.values():  # warm-up: page cache, nginx
                _clean(dest)
                timed(argv, stdout=subprocess.DEVNULL)
            runs: Dict[str, List[Run]] = {name: [] for name in commands}
            for i in range(args.runs):
                order = list(commands) if i % 2 == 0 else list(reversed(commands))
                for name in order:
                    _clean(dest)
                    runs[name].append(timed(commands[name], stdout=subprocess.DEVNULL))
                print(
                    f"run {i + 1}: " + ", ".join(f"{n} {runs[n][-1].wall:.2f}s" for n in commands),
                    flush=True,
                )
            resume_ok = check_resume(args.python, args.api, url, dest, digest, size, server)

    ours = runs["pyimagecache"]
    print(f"\n{args.size_mib} MiB over loopback from nginx, {args.runs} runs each, alternating")
    for name, rs in runs.items():
        print(
            f"  {name:15s} median {statistics.median(r.wall for r in rs):6.2f} s   "
            f"peak RSS {max(r.rss_mib for r in rs):6.1f} MiB"
        )
    ok = resume_ok
    for name in ("curl -o", "curl|sha256sum", "curl -o; sync"):
        ratio = statistics.median(a.wall / b.wall for a, b in zip(ours, runs[name]))
        bar = f"(bar <= {BARS[name]})" if name in BARS else ""
        if name in BARS and ratio > BARS[name]:
            ok = False
        print(f"  pyimagecache / {name}: median paired ratio {ratio:.2f} {bar}")
    rss = max(r.rss_mib for r in ours)
    ok = ok and rss <= RSS_BAR_MIB
    print(f"  pyimagecache peak RSS {rss:.1f} MiB (bar <= {RSS_BAR_MIB:.0f})")
    print("all bars met" if ok else "a bar was missed")
    return 0 if ok else 1


def _clean(dest: Path) -> None:
    """Remove the last output, then sync: no contender pays for the previous one's writeback."""
    for path in dest.parent.glob(dest.name + "*"):
        path.unlink()
    os.sync()


if __name__ == "__main__":
    sys.exit(main())
