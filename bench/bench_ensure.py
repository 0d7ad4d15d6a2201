#!/usr/bin/env python3
"""Time to a disk: a cold ``pyimagecache ensure`` against the download alone and against
download-then-convert, with nginx serving at a throttled rate and unthrottled.

Serves, with a real nginx on 127.0.0.1 (``limit_rate``), the bench's ``deflate.qcow2`` and a
``.tar.xz`` of the same 3 GiB disk (both built by ``bench_convert.py`` / here, into
``--workdir``). For each rate and image, in alternating order, ``--runs`` times each:

- ``ensure``: ``pyimagecache ensure URL --sha256 PIN --cache-dir EMPTY`` (download, converting
  while it arrives, verified, published durably);
- ``download``: ``curl -s -o F URL && sync F`` (the download alone, made durable like ensure's);
- ``sequential``: ``pyimagecache fetch URL F --sha256 PIN`` then the conversion of ``F`` into the
  cache (what ensure did before it overlapped the two: download, then convert, both durable).

Each run starts from an empty cache after ``sync``. Prints median wall times, the medians of the
paired ratios and peak RSS (``os.wait4``), and checks the bars: throttled to 128 MB/s, ensure of
the qcow2 at most 1.1x the download alone; unthrottled, at most 0.8x download-then-convert.

A script, not a test::

    python bench/bench_ensure.py --runs 5 --workdir /work/benchwork \
        --python /work/benchvenv/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from bench_fetch import Run, timed  # noqa: E402 - the same timing as the other benches
from nginx import serve_dir  # noqa: E402

MB = 1000 * 1000
RSS_BAR_MIB = 64.0
TIMEOUT = 1800
#: (label, nginx limit_rate in bytes per second or None, {image: (contender, bar)})
RATES: List[Tuple[str, Optional[int]]] = [
    ("32MB/s", 32 * MB),
    ("128MB/s", 128 * MB),
    ("unthrottled", None),
]
BARS = {
    ("128MB/s", "deflate.qcow2", "download"): 1.1,
    ("unthrottled", "deflate.qcow2", "sequential"): 0.8,
}

#: ``--baseline-python``: ensure may cost at most this much more than the baseline's.
BASELINE_BAR = 1.05

SEQUENTIAL = """\
import sys
from pathlib import Path
import pyimagecache
url, pin, cache = sys.argv[1], sys.argv[2], Path(sys.argv[3])
cache.mkdir(parents=True, exist_ok=True)
source = pyimagecache.fetch(url, cache / "source", sha256=pin)
pyimagecache.convert(source, cache / "disk.raw", sync=True)  # any format, wrappers too
"""


def build_tar_xz(images: Path) -> Path:
    out = images / "disk.tar.xz"
    if not out.exists():
        raw = images / "disk.raw"
        if not raw.exists():
            raise SystemExit(f"bench_ensure: {raw} missing: run bench_convert.py --reuse first")
        tmp = images / ".disk.tar.xz.tmp"
        print("building disk.tar.xz (tar --sparse | xz -T0 -3)", flush=True)
        subprocess.run(
            f"tar -C {images} --sparse -cf - disk.raw | xz -T0 -3 > {tmp}", shell=True, check=True
        )
        os.replace(tmp, out)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def clean(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    os.sync()


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workdir", type=Path, default=REPO / "bench" / "work")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--only-rate", choices=[r for r, _ in RATES])
    p.add_argument(
        "--baseline-python",
        help="also time the same ensure with this interpreter (another pyimagecache installed): "
        "the cost of a change, alternating, same run (issue 17's bar: at most 1.05x)",
    )
    args = p.parse_args(argv)
    images = args.workdir.resolve() / "images"
    served = {"deflate.qcow2": images / "deflate.qcow2", "disk.tar.xz": build_tar_xz(images)}
    pins = {name: sha256(path) for name, path in served.items()}
    www = Path(tempfile.mkdtemp(prefix="bench-ensure-www-"))
    scratch = Path(tempfile.mkdtemp(prefix="bench-ensure-", dir=args.workdir))
    for name, path in served.items():
        os.symlink(path, www / name)
    ok = True
    try:
        for label, rate in RATES:
            if args.only_rate and label != args.only_rate:
                continue
            extra = f"limit_rate {rate};" if rate else ""
            with serve_dir(www, extra=extra) as nginx:
                for name in served:
                    url, pin = nginx.url(name), pins[name]
                    cache, dest = scratch / "cache", scratch / "download"
                    contenders = {
                        "ensure": [
                            args.python,
                            "-m",
                            "pyimagecache",
                            "ensure",
                            url,
                            "--sha256",
                            pin,
                            "--cache-dir",
                            str(cache),
                        ],
                        "download": ["sh", "-c", f"curl -s -o '{dest}' '{url}' && sync '{dest}'"],
                        "sequential": [args.python, "-c", SEQUENTIAL, url, pin, str(cache)],
                    }
                    if args.baseline_python:
                        base = [args.baseline_python, *contenders["ensure"][1:]]
                        contenders["baseline"] = base
                    runs: Dict[str, List[Run]] = {k: [] for k in contenders}
                    order = list(contenders)
                    for i in range(args.runs):
                        for key in order if i % 2 == 0 else reversed(order):
                            clean(cache, dest)
                            runs[key].append(timed(contenders[key], stdout=subprocess.DEVNULL))
                    clean(cache, dest)
                    print(
                        f"\n{label}, {name} ({served[name].stat().st_size / MB:.0f} MB), "
                        f"{args.runs} alternating runs"
                    )
                    for key, rs in runs.items():
                        print(
                            f"  {key:10s} median {statistics.median(r.wall for r in rs):7.2f} s"
                            f"   peak RSS {max(r.rss_mib for r in rs):6.1f} MiB"
                        )
                    for other in ("download", "sequential", "baseline"):
                        if other not in runs:
                            continue
                        ratio = statistics.median(
                            a.wall / b.wall for a, b in zip(runs["ensure"], runs[other])
                        )
                        bar = (
                            BASELINE_BAR if other == "baseline" else BARS.get((label, name, other))
                        )
                        verdict = (
                            ""
                            if bar is None
                            else (f"(bar <= {bar}: {'ok' if ratio <= bar else 'MISSED'})")
                        )
                        ok = ok and (bar is None or ratio <= bar)
                        print(f"  ensure / {other}: median paired ratio {ratio:.2f} {verdict}")
                    rss = max(r.rss_mib for r in runs["ensure"])
                    ok = ok and rss <= RSS_BAR_MIB
                    print(f"  ensure peak RSS {rss:.1f} MiB (bar <= {RSS_BAR_MIB:.0f})")
    finally:
        shutil.rmtree(www, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print("\nall bars met" if ok else "\na bar was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
