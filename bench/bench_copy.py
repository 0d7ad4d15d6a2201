"""copy_disk against ``cp --sparse=always`` on a 3 GiB raw holding 300 MiB of data.

Runs alternate between the contenders (so drift in machine load hits all), and the median wall
time of each is compared, with the copies' allocation against the source's. Neither cp nor
copy_disk flushes by default; the durable pair, ``cp`` then fsync against
``copy_disk(sync=True)``, is shown as well.

    python bench/bench_copy.py [--runs 7] [--size-gib 3] [--data-mib 300] [--dir bench/work]

Exits non-zero when the bar (wall <= 1.2x cp, allocation within 5% of the source) is missed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyimagecache.diskcopy import copy_disk  # noqa: E402

MiB = 1 << 20


def make_source(path: Path, size: int, data: int) -> None:
    """``data`` bytes of random 1 MiB extents spread evenly over a ``size``-byte sparse file."""
    rng = random.Random(2026)
    extents = data // MiB
    stride = size // extents
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(extents):
            f.seek(i * stride + rng.randrange(0, stride - MiB, 4096))
            f.write(rng.randbytes(MiB))
        os.fsync(f.fileno())


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size-gib", type=int, default=3)
    parser.add_argument("--data-mib", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / "work")
    args = parser.parse_args()
    cp = shutil.which("cp")
    if cp is None:
        print("cp not found", file=sys.stderr)
        return 2
    work = args.dir
    work.mkdir(parents=True, exist_ok=True)
    src = work / "copy-src.raw"
    if not src.exists() or src.stat().st_size != args.size_gib << 30:
        print(f"creating {src} ({args.size_gib} GiB, {args.data_mib} MiB data)")
        make_source(src, args.size_gib << 30, args.data_mib * MiB)
    dst = work / "copy-dst.raw"

    def run_cp() -> None:
        subprocess.run([cp, "--sparse=always", str(src), str(dst)], check=True)

    def run_cp_sync() -> None:
        run_cp()
        fsync_file(dst)

    def run_copy_disk() -> None:
        copy_disk(src, dst)

    def run_copy_disk_sync() -> None:
        copy_disk(src, dst, sync=True)

    contenders: Dict[str, Callable[[], None]] = {
        "cp --sparse=always": run_cp,
        "copy_disk": run_copy_disk,
        "cp --sparse=always + fsync": run_cp_sync,
        "copy_disk(sync=True)": run_copy_disk_sync,
    }
    times: Dict[str, List[float]] = {name: [] for name in contenders}
    alloc: Dict[str, int] = {}
    for _ in range(args.runs):
        for name, fn in contenders.items():
            if dst.exists():
                dst.unlink()
            os.sync()  # no contender pays for another's writeback
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            alloc[name] = allocated(dst)
    dst.unlink()

    src_alloc = allocated(src)
    print(
        f"source: {src.stat().st_size / MiB:.0f} MiB apparent, {src_alloc / MiB:.1f} MiB "
        f"allocated; {args.runs} alternating runs each, median wall time"
    )
    for name, values in times.items():
        med = statistics.median(values)
        print(
            f"  {name:28s} {med * 1000:8.1f} ms  (min {min(values) * 1000:.1f})  "
            f"allocated {alloc[name] / MiB:.1f} MiB"
        )
    ratio = statistics.median(times["copy_disk"]) / statistics.median(times["cp --sparse=always"])
    ratio_sync = statistics.median(times["copy_disk(sync=True)"]) / statistics.median(
        times["cp --sparse=always + fsync"]
    )
    alloc_ratio = alloc["copy_disk"] / src_alloc
    print(
        f"copy_disk / cp: {ratio:.2f}x   copy_disk(sync=True) / (cp + fsync): "
        f"{ratio_sync:.2f}x   allocation / source: {alloc_ratio:.3f}"
    )
    ok = ratio <= 1.2 and abs(alloc_ratio - 1) <= 0.05
    print("bar met" if ok else "bar MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
