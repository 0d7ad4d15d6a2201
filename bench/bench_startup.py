"""Start-up: ``pyimagecache --version`` and ``pyimagecache ensure ALIAS`` on a cache hit,
against ``python -c pass`` on the same interpreter, in alternating runs (issue 18 §4).

Bars: the hit at most 1.6x and ``--version`` at most 1.3x ``python -c pass``, ratio of
medians. Run it against pyimagecache installed as a user installs it (README's first command:
``pip install .``, not editable: an editable install's import hook loads pathlib and re into
every interpreter, the bare one included)::

    python3 -m venv /tmp/startup && /tmp/startup/bin/pip install -q .
    python bench/bench_startup.py --python /tmp/startup/bin/python --runs 40

The hit is for an alias of the embedded catalog (the catalog a user's hit reads). This
machine cannot download the real image, so the script publishes a small stand-in disk for it
with the library's own publish step (raw, sidecar with size, time and content digest): a hit
looks at nothing else. The same figures with public tools::

    hyperfine -N --warmup 5 -r 40 'PY -c pass' 'BIN/pyimagecache --version' \\
        'BIN/pyimagecache ensure debian-12 --arch amd64 --cache-dir DIR'
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fetch import timed  # noqa: E402

BARS = {"--version": 1.3, "ensure hit": 1.6}

STAND_IN = """
import sys
from pathlib import Path
from pyimagecache import cache
from pyimagecache.contentdigest import file_content_digest
alias, arch, directory = sys.argv[1], sys.argv[2], Path(sys.argv[3])
request = cache.resolve(alias, arch=arch)
directory.mkdir(parents=True, exist_ok=True)
raw = directory / request.names.raw
scratch = directory / ".stand-in"
scratch.write_bytes(b"\\xeb\\x63\\x90" + bytes(65533))
digests = dict(request.expected.items())
cache._publish(request, scratch, raw, digests, "raw", file_content_digest(scratch))
print(raw)
"""


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command")
    parser.add_argument("--alias", default="debian-12", help="an alias of the embedded catalog")
    parser.add_argument("--arch", default="amd64")
    args = parser.parse_args(list(argv) or None)
    command = str(Path(args.python).with_name("pyimagecache"))
    if not os.access(command, os.X_OK):
        raise SystemExit(f"{command} is not installed beside {args.python}")
    with tempfile.TemporaryDirectory(prefix="pyimagecache-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYIMAGECACHE_")}
        out = subprocess.run(
            [args.python, "-c", STAND_IN, args.alias, args.arch, tmp],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        raw = out.stdout.strip()
        hit = [command, "ensure", args.alias, "--arch", args.arch, "--cache-dir", tmp]
        check = subprocess.run(hit, check=True, capture_output=True, text=True, env=env)
        assert check.stdout.strip() == raw, (check.stdout, raw)
        contenders: Dict[str, List[str]] = {
            "python -c pass": [args.python, "-c", "pass"],
            "--version": [command, "--version"],
            "ensure hit": hit,
        }
        for argv in contenders.values():  # warm the page cache
            timed(argv, stdout=subprocess.DEVNULL, env=env)
        walls: Dict[str, List[float]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, argv in contenders.items():  # alternating, so drift hits all alike
                walls[name].append(timed(argv, stdout=subprocess.DEVNULL, env=env).wall)
    base = statistics.median(walls["python -c pass"])
    print(f"{'command':<16} {'median':>9} {'min':>9} {'ratio':>7}  bar")
    failed = False
    for name, runs in walls.items():
        median = statistics.median(runs)
        ratio = median / base
        bar = BARS.get(name)
        verdict = "" if bar is None else f"<= {bar}x {'met' if ratio <= bar else 'MISSED'}"
        failed |= bar is not None and ratio > bar
        print(f"{name:<16} {median * 1e3:8.2f}ms {min(runs) * 1e3:8.2f}ms {ratio:6.2f}x  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
