#!/usr/bin/env python3
"""Time ``pyimagecache convert`` against ``qemu-img convert -O raw`` on a realistic image.

Builds a Debian root filesystem with ``debootstrap --variant=minbase``, packs it into a 3 GiB ext4
raw disk with ``mkfs.ext4 -d`` and turns that into three qcow2 images with qemu-img (deflate
clusters, zstd clusters, uncompressed), plus an empty 1 TiB qcow2 and a 1 TiB one with 4 KiB
written every 128 MiB. Each case then runs both converters on the same file in alternating order
and prints median wall times, the median of the paired ratios, CPU time, peak RSS of both
processes, whether the outputs are byte-identical and their allocated sizes, each checked against
its bar. The same disk is also converted by qemu-img into a streamOptimized VMDK, a dynamic VHD,
a dynamic VHDX and a dynamic VDI, for the other readers.

Like with like: the default cases run ``pyimagecache convert`` against plain ``qemu-img convert``
(neither flushes its output); the ``-sync`` cases run ``pyimagecache convert --sync`` against
``qemu-img convert -t writeback`` (both flush before they exit).

Needs root (debootstrap), qemu-img, qemu-io, mkfs.ext4 and cmp. A script, not a test::

    sudo /work/venv/bin/python bench/bench_convert.py --runs 5 --reuse
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30
MIB = 1 << 20
DISK_SIZE = 3 * GIB
RSS_BAR_MIB = 64.0
# Past this size `cmp` would spend minutes reading holes; compare data extents only.
CMP_LIMIT = 16 * GIB
TIMEOUT = 900  # seconds for any single subprocess: a hung converter must not hang the bench


class Case(NamedTuple):
    name: str
    image: str  # file name under <workdir>/images
    env: Dict[str, str]  # extra environment for pyimagecache
    backend: Optional[str]  # inflate backend the case requires, None when irrelevant
    max_ratio: Optional[float]  # pyimagecache wall time / qemu-img's, at most
    max_seconds: Optional[float]  # pyimagecache wall time, at most
    sync: bool = False  # both flush: ours --sync against qemu-img -t writeback


ZLIB = {"PYIMAGECACHE_INFLATE": "zlib"}
CASES = [
    # Default pairs: neither tool flushes.
    Case("deflate-zlib", "deflate.qcow2", ZLIB, "zlib", None, None),
    Case("deflate-ng", "deflate.qcow2", {}, "zlib-ng", 0.5, None),
    Case("zstd", "zstd.qcow2", {}, None, None, None),
    Case("uncompressed", "plain.qcow2", {}, None, 1.5, None),
    # Durable pairs: both flush before exiting.
    Case("deflate-zlib-sync", "deflate.qcow2", ZLIB, "zlib", 1.0, None, True),
    Case("deflate-ng-sync", "deflate.qcow2", {}, "zlib-ng", 1.0, None, True),
    Case("zstd-sync", "zstd.qcow2", {}, None, 1.0, None, True),
    Case("uncompressed-sync", "plain.qcow2", {}, None, 1.0, None, True),
    Case("empty-1t", "empty-1t.qcow2", {}, None, None, 0.2),
    # No bar: L2 decoding cost when every table of a huge disk is allocated but nearly empty.
    Case("scattered-1t", "scattered-1t.qcow2", {}, None, None, None),
    # The other formats vendors ship, from the same disk.
    Case("vmdk-stream", "stream.vmdk", {}, None, 0.7, None),
    Case("vhd-dynamic", "dynamic.vhd", {}, None, 1.5, None),
    Case("vhdx-dynamic", "dynamic.vhdx", {}, None, 1.5, None),
    # Large payload blocks (issue 18): qemu-img's default for a 3 GiB disk, and Hyper-V's.
    Case("vhdx-16m", "vhdx-16m.vhdx", {}, None, 1.0, None),
    Case("vhdx-32m", "vhdx-32m.vhdx", {}, None, 1.0, None),
    Case("vdi-dynamic", "dynamic.vdi", {}, None, 1.5, None),
]
#: scattered-1t: one 4 KiB write every SCATTER_STEP bytes of a 1 TiB disk, the way mkfs leaves
#: metadata in every block group (8192 data clusters, every L2 table allocated).
SCATTER_STEP = 128 * MIB


class Run(NamedTuple):
    wall: float
    cpu: float  # user + system seconds
    max_rss: int  # bytes
    status: int
    stderr: str


class Result(NamedTuple):
    case: str
    qemu: List[Run]
    ours: List[Run]
    identical: Optional[bool]
    alloc_qemu: int
    alloc_ours: int
    cluster_size: int
    note: str


class BenchError(Exception):
    """A step of the benchmark could not run; the message says which and why."""


# ---------------------------------------------------------------------------------------------
# Building the images


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def check_call(cmd: Sequence[str], logfile: Path) -> None:
    """Run a build step, its output appended to ``logfile``; fail with the log's tail."""
    with open(logfile, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        status = subprocess.run(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, timeout=3600, check=False
        ).returncode
    if status != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        raise BenchError(f"{cmd[0]} exited with {status}:\n  " + "\n  ".join(tail))


def apt_mirror() -> str:
    """The Debian archive apt uses here (one-line or deb822 sources), else deb.debian.org."""
    uris: List[str] = []
    sources = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        sources += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for path in sources:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
            if m:
                uris.append(m.group(1))
            elif line.lower().startswith("uris:"):
                uris += line.split(":", 1)[1].split()
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def host_suite() -> str:
    try:
        fields = dict(
            line.split("=", 1)
            for line in Path("/etc/os-release").read_text().splitlines()
            if "=" in line
        )
    except OSError:
        return "bookworm"
    if fields.get("ID", "").strip('"') == "debian" and fields.get("VERSION_CODENAME"):
        return fields["VERSION_CODENAME"].strip('"')
    return "bookworm"


def build_images(images: Path, wanted: Sequence[str], suite: str, mirror: str) -> None:
    """Create each wanted image that does not exist yet; each is renamed into place only when
    complete, so an interrupted build is redone rather than benchmarked."""
    images.mkdir(parents=True, exist_ok=True)
    logfile = images / "build.log"
    raw = images / "disk.raw"
    derived = {
        "deflate.qcow2": ["-O", "qcow2", "-c", "-o", "compression_type=zlib"],
        "zstd.qcow2": ["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
        "plain.qcow2": ["-O", "qcow2"],
        "stream.vmdk": ["-O", "vmdk", "-o", "subformat=streamOptimized"],
        "dynamic.vhd": ["-O", "vpc", "-o", "subformat=dynamic"],
        "dynamic.vhdx": ["-O", "vhdx", "-o", "subformat=dynamic"],
        "vhdx-16m.vhdx": ["-O", "vhdx", "-o", "subformat=dynamic,block_size=16M"],
        "vhdx-32m.vhdx": ["-O", "vhdx", "-o", "subformat=dynamic,block_size=32M"],
        "dynamic.vdi": ["-O", "vdi"],
    }
    if any(name in derived for name in wanted if not (images / name).exists()):
        if not raw.exists():
            build_raw_disk(images, raw, suite, mirror, logfile)
        for name, opts in derived.items():
            if name in wanted and not (images / name).exists():
                log(f"qemu-img convert {' '.join(opts) or '(uncompressed)'} -> {name}")
                tmp = images / f".{name}.tmp"
                check_call(["qemu-img", "convert", "-f", "raw", *opts, str(raw), str(tmp)], logfile)
                os.replace(tmp, images / name)
    if "empty-1t.qcow2" in wanted and not (images / "empty-1t.qcow2").exists():
        tmp = images / ".empty-1t.qcow2.tmp"
        check_call(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp), "1T"], logfile)
        os.replace(tmp, images / "empty-1t.qcow2")
    if "scattered-1t.qcow2" in wanted and not (images / "scattered-1t.qcow2").exists():
        build_scattered(images / "scattered-1t.qcow2", logfile)


def build_scattered(dst: Path, logfile: Path) -> None:
    if shutil.which("qemu-io") is None:
        raise BenchError("qemu-io not found on PATH (Debian: qemu-utils); it builds scattered-1t")
    tmp = dst.with_name(f".{dst.name}.tmp")
    check_call(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp), "1T"], logfile)
    writes = (1 << 40) // SCATTER_STEP
    commands = "".join(f"write -q -P {i % 255 + 1} {i * SCATTER_STEP} 4k\n" for i in range(writes))
    log(f"qemu-io: {writes} scattered writes -> {dst.name}")
    # Not check_call: qemu-io echoes a prompt per command on stdout, which the log does not need.
    with open(logfile, "ab") as out:
        status = subprocess.run(
            ["qemu-io", "-f", "qcow2", str(tmp)],
            input=commands.encode(),
            stdout=subprocess.DEVNULL,
            stderr=out,
            timeout=3600,
        ).returncode
    if status != 0:
        raise BenchError(f"qemu-io exited with {status}; see {logfile}")
    os.replace(tmp, dst)


def build_raw_disk(images: Path, raw: Path, suite: str, mirror: str, logfile: Path) -> None:
    if os.geteuid() != 0:
        raise BenchError(
            "building the image needs root: debootstrap installs packages as root "
            "and mkfs.ext4 -d copies ownership (or pass --reuse with built images)"
        )
    for tool in ("debootstrap", "mkfs.ext4", "qemu-img"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found on PATH")
    rootfs = images / "rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    log(f"debootstrap --variant=minbase {suite} from {mirror} (log: {logfile})")
    check_call(["debootstrap", "--variant=minbase", suite, str(rootfs), mirror], logfile)
    # apt's downloaded .debs would be data no real cloud image carries.
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    tmp = images / ".disk.raw.tmp"
    with open(tmp, "wb") as f:
        f.truncate(DISK_SIZE)
    log("mkfs.ext4 -d rootfs on a 3 GiB raw disk")
    check_call(["mkfs.ext4", "-q", "-F", "-L", "bench-root", "-d", str(rootfs), str(tmp)], logfile)
    os.replace(tmp, raw)
    shutil.rmtree(rootfs)


# ---------------------------------------------------------------------------------------------
# Running and checking


def timed(cmd: Sequence[str], env: Optional[Dict[str, str]] = None) -> Run:
    """Wall time, CPU time and peak RSS of one process, from its own rusage (os.wait4)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env
        )
        deadline = start + TIMEOUT
        while True:
            pid, wstatus, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, wstatus, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return Run(wall, usage.ru_utime + usage.ru_stime, rss, proc.returncode, text)


def data_extents(fd: int, size: int) -> Iterator[Tuple[int, int]]:
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: nothing but a hole up to the end
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        pos = end


def same_bytes(a: Path, b: Path) -> bool:
    """``cmp`` for ordinary sizes; for huge sparse files, compare the union of both files' data
    extents (everything else is a hole, hence zeros, in both)."""
    size = a.stat().st_size
    if size != b.stat().st_size:
        return False
    if size <= CMP_LIMIT or not hasattr(os, "SEEK_DATA"):
        return subprocess.run(["cmp", "-s", str(a), str(b)], timeout=TIMEOUT).returncode == 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        ranges = sorted(
            list(data_extents(fa.fileno(), size)) + list(data_extents(fb.fileno(), size))
        )
        for start, end in ranges:
            while start < end:
                n = min(end - start, 8 * MIB)
                if os.pread(fa.fileno(), n, start) != os.pread(fb.fileno(), n, start):
                    return False
                start += n
    return True


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def fresh(path: Path) -> None:
    """Remove a previous output and flush dirty pages, so no run pays for another's writeback
    (qemu-img convert does not fsync its output by default; pyimagecache does)."""
    if path.exists():
        path.unlink()
    os.sync()


def run_case(case: Case, image: Path, out: Path, runs: int, ours_cmd: List[str]) -> Result:
    out.mkdir(parents=True, exist_ok=True)
    q_out, p_out = out / f"{case.name}.qemu.raw", out / f"{case.name}.pyimagecache.raw"
    flush = ["-t", "writeback"] if case.sync else []  # qemu-img fdatasyncs at close
    qemu = ["qemu-img", "convert", *flush, "-O", "raw", str(image), str(q_out)]
    ours = [*ours_cmd, *(["--sync"] if case.sync else []), str(image), str(p_out)]
    env = dict(os.environ, **case.env)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(image)],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    )
    cluster = int(info.get("cluster-size") or 2 * MIB)  # vpc and vdi report none: a block

    # One untimed round each: warms the page cache with the source and catches a broken tool.
    for tool, cmd, dst, e in (("qemu-img", qemu, q_out, None), ("pyimagecache", ours, p_out, env)):
        fresh(dst)
        warm = timed(cmd, e)
        if warm.status != 0:
            return Result(
                case.name,
                [],
                [],
                None,
                0,
                0,
                cluster,
                f"{tool} failed ({warm.status}): {last_line(warm.stderr)}",
            )
    q_runs: List[Run] = []
    p_runs: List[Run] = []
    for i in range(runs):
        order = [(qemu, q_out, None, q_runs), (ours, p_out, env, p_runs)]
        if i % 2:
            order.reverse()
        for cmd, dst, e, into in order:
            fresh(dst)
            r = timed(cmd, e)
            if r.status != 0:
                return Result(
                    case.name,
                    q_runs,
                    p_runs,
                    None,
                    0,
                    0,
                    cluster,
                    f"run {i + 1} failed ({r.status}): {last_line(r.stderr)}",
                )
            into.append(r)
    identical = same_bytes(q_out, p_out)
    result = Result(
        case.name, q_runs, p_runs, identical, allocated(q_out), allocated(p_out), cluster, ""
    )
    q_out.unlink()
    p_out.unlink()
    return result


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def inflate_backend(python: str, env: Dict[str, str]) -> str:
    proc = subprocess.run(
        [python, "-c", "from pyimagecache._codecs import INFLATE_BACKEND as b; print(b)"],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        timeout=60,
    )
    return proc.stdout.strip() if proc.returncode == 0 else f"error: {last_line(proc.stderr)}"


# ---------------------------------------------------------------------------------------------
# Reporting


def verdict(case: Case, r: Result) -> Tuple[str, List[str]]:
    if r.note:
        return "ERROR", [r.note]
    fails = []
    ratio = paired_ratio(r)
    ours = statistics.median(x.wall for x in r.ours)
    if case.max_ratio is not None and ratio > case.max_ratio:
        fails.append(f"ratio {ratio:.2f} > {case.max_ratio}")
    if case.max_seconds is not None and ours >= case.max_seconds:
        fails.append(f"{ours:.3f} s >= {case.max_seconds} s")
    rss = max(x.max_rss for x in r.ours) / MIB
    if rss > RSS_BAR_MIB:
        fails.append(f"peak RSS {rss:.1f} MiB > {RSS_BAR_MIB:.0f}")
    if not r.identical:
        fails.append("output differs from qemu-img's")
    if r.alloc_ours > r.alloc_qemu + r.cluster_size:
        fails.append(f"allocates {r.alloc_ours - r.alloc_qemu} B more than qemu-img")
    return ("ok" if not fails else "FAIL"), fails


def paired_ratio(r: Result) -> float:
    return statistics.median(p.wall / q.wall for p, q in zip(r.ours, r.qemu))


def bar_text(case: Case) -> str:
    parts = []
    if case.max_ratio is not None:
        parts.append(f"<={case.max_ratio}x")
    if case.max_seconds is not None:
        parts.append(f"<{case.max_seconds}s")
    return ",".join(parts)


def print_table(cases: Sequence[Case], results: Sequence[Result]) -> None:
    head = (
        "case",
        "qemu s",
        "ours s",
        "ratio",
        "bar",
        "qemu cpu",
        "ours cpu",
        "qemu RSS",
        "ours RSS",
        "same",
        "alloc q/o MiB",
        "verdict",
    )
    rows = [head]
    notes = []
    for case, r in zip(cases, results):
        status, why = verdict(case, r)
        if r.note:
            rows.append(
                (case.name, "-", "-", "-", bar_text(case), "-", "-", "-", "-", "-", "-", status)
            )
        else:

            def med(runs: List[Run], f: str) -> str:
                return f"{statistics.median(getattr(x, f) for x in runs):.3f}"

            rows.append(
                (
                    case.name,
                    med(r.qemu, "wall"),
                    med(r.ours, "wall"),
                    f"{paired_ratio(r):.2f}",
                    bar_text(case),
                    med(r.qemu, "cpu"),
                    med(r.ours, "cpu"),
                    f"{max(x.max_rss for x in r.qemu) / MIB:.1f}",
                    f"{max(x.max_rss for x in r.ours) / MIB:.1f}",
                    "yes" if r.identical else "NO",
                    f"{r.alloc_qemu / MIB:.1f}/{r.alloc_ours / MIB:.1f}",
                    status,
                )
            )
        notes += [f"  {case.name}: {w}" for w in why]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths))
            )
        )
    print(
        "\ns = median wall seconds; ratio = median of paired (ours/qemu) wall times; cpu = "
        "median user+sys s;\nRSS = peak MiB over all runs (bar: ours <= 64); alloc = st_blocks "
        "(bar: ours <= qemu + 1 cluster)"
    )
    if notes:
        print("\n" + "\n".join(notes))


def header(args: argparse.Namespace, backends: Dict[str, str]) -> None:
    git = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    qver = subprocess.run(
        ["qemu-img", "--version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}  {platform.node()}  cpus={os.cpu_count()}  "
        f"load={load}"
    )
    print(f"pyimagecache: {' '.join(ours_command(args))} (commit {git or '?'})")
    print(f"python: {args.python}  inflate: " + ", ".join(f"{k}={v}" for k, v in backends.items()))
    print(
        f"qemu-img: {qver}; command: qemu-img convert -O raw (-sync cases: -t writeback, "
        "against pyimagecache convert --sync)"
    )
    print(f"runs: {args.runs} alternating, after one warm-up each\n")


# ---------------------------------------------------------------------------------------------
# The content digest's cost (issue 17): the same conversion with and without it, in process

#: (case, image): the compressed qcow2s, the large-block VHDX and a container (unpacked, not
#: converted: its payload is raw).
DIGEST_CASES = [
    ("deflate", "deflate.qcow2"),
    ("zstd", "zstd.qcow2"),
    ("uncompressed", "plain.qcow2"),
    ("vhdx-16m", "vhdx-16m.vhdx"),
    ("vhdx-32m", "vhdx-32m.vhdx"),
    ("tar.xz", "disk.tar.xz"),
]
DIGEST_BAR = 1.05

#: Runs in the pyimagecache interpreter: one warm-up each, then alternating runs (off, on / on,
#: off), one JSON line per run; then one more run with the digest, checked against
#: file_content_digest of its output.
DIGEST_DRIVER = """
import json, os, sys, time
from pathlib import Path
from pyimagecache import formats
from pyimagecache.contentdigest import ContentDigest, file_content_digest
from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.opener import open_image
from pyimagecache.unpack import unpack

image, out, runs, sync = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
container = formats.detect_file(image) in formats.CONTAINERS

class Counted(ContentDigest):
    regions = 0
    def _store(self, index, length, digest):
        super()._store(index, length, digest)
        Counted.regions += 1

def once(with_digest):
    if out.exists():
        out.unlink()
    os.sync()
    digest = Counted() if with_digest else None
    t0, c0 = time.perf_counter(), os.times()
    if container:
        unpack(image, out, digest=digest)
        if sync:
            fd = os.open(out, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    else:
        with open_image(image) as img:
            convert_image(img, out, ConvertOptions(sync=sync, digest=digest))
    value = digest.finish() if digest is not None else None
    c1 = os.times()
    return time.perf_counter() - t0, c1.user - c0.user + c1.system - c0.system, value

once(False)
once(True)
for i in range(runs):
    for flag in ((False, True) if i % 2 == 0 else (True, False)):
        wall, cpu, value = once(flag)
        print(json.dumps({"digest": flag, "wall": wall, "cpu": cpu, "value": value}), flush=True)
Counted.regions = 0
_, _, value = once(True)
print(json.dumps({"check": value == file_content_digest(out), "regions": Counted.regions}))
out.unlink()
"""


def digest_cost(args: argparse.Namespace, images: Path, out: Path) -> int:
    """Time each DIGEST_CASES conversion with and without the content digest; print medians,
    the ratio of the medians and the median of the paired ratios; 1 when one misses 1.05x."""
    from bench_ensure import build_tar_xz

    wanted = [(c, i) for c, i in DIGEST_CASES if not args.only or c in args.only.split(",")]
    build_images(images, [i for _, i in wanted], args.suite, args.mirror or apt_mirror())
    if any(i == "disk.tar.xz" for _, i in wanted):
        build_tar_xz(images)
    out.mkdir(parents=True, exist_ok=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"content digest cost, in process: {args.python}; load={load}; sync={args.sync}")
    print(f"runs: {args.runs} alternating (off/on, on/off), after one warm-up each\n")
    rows = [("case", "off s", "on s", "ratio", "paired", "off cpu", "on cpu", "MiB hashed", "")]
    failed = False
    for case, image in wanted:
        log(f"digest {case}: {args.runs} alternating runs on {image}")
        proc = subprocess.run(
            [args.python, "-c", DIGEST_DRIVER, str(images / image), str(out / "digest.raw"),
             str(args.runs), "1" if args.sync else "0"],
            capture_output=True, text=True, timeout=TIMEOUT * 4,
        )  # fmt: skip
        if proc.returncode != 0:
            rows.append((case, "-", "-", "-", "-", "-", "-", "-", "ERROR"))
            print(f"  {case}: {last_line(proc.stderr)}", file=sys.stderr)
            failed = True
            continue
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        runs, check = lines[:-1], lines[-1]
        off = [r for r in runs if not r["digest"]]
        on = [r for r in runs if r["digest"]]
        walls_off, walls_on = [r["wall"] for r in off], [r["wall"] for r in on]
        ratio = statistics.median(walls_on) / statistics.median(walls_off)
        paired = statistics.median(a / b for a, b in zip(walls_on, walls_off))
        same = check["check"] and len({r["value"] for r in on}) == 1
        verdict = "ok" if ratio <= DIGEST_BAR and same else "FAIL"
        failed = failed or verdict != "ok"
        rows.append(
            (
                case,
                f"{statistics.median(walls_off):.3f}",
                f"{statistics.median(walls_on):.3f}",
                f"{ratio:.3f}",
                f"{paired:.3f}",
                f"{statistics.median(r['cpu'] for r in off):.3f}",
                f"{statistics.median(r['cpu'] for r in on):.3f}",
                str(check["regions"]),
                verdict + ("" if same else " (digest differs from file_content_digest)"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        )
    print(
        "\ns = median wall seconds; ratio = on/off medians (bar <= 1.05); paired = median of the "
        "paired on/off ratios;\ncpu = median user+sys s of the process; MiB hashed = non-zero "
        "1 MiB regions"
    )
    return 1 if failed else 0


def ours_command(args: argparse.Namespace) -> List[str]:
    cmd = [args.python, "-m", "pyimagecache", "convert"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    return cmd


def select(only: Optional[str]) -> List[Case]:
    if not only:
        return list(CASES)
    tokens = [t.strip() for t in only.split(",") if t.strip()]
    chosen = [c for c in CASES if any(c.name == t or c.name.startswith(t + "-") for t in tokens)]
    unknown = [
        t for t in tokens if not any(c.name == t or c.name.startswith(t + "-") for c in CASES)
    ]
    if unknown:
        raise SystemExit(
            f"bench_convert: unknown case {', '.join(unknown)}; "
            f"choose from {', '.join(c.name for c in CASES)} or deflate"
        )
    return chosen


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs per tool and case (default 5)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "bench" / "work",
        help="images and outputs go here (default bench/work, git-ignored)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse images already in the workdir and keep them afterwards",
    )
    p.add_argument(
        "--only",
        help="comma-separated cases: "
        + ", ".join(c.name for c in CASES)
        + " (deflate = both deflate cases)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs pyimagecache (default: this one)",
    )
    p.add_argument("--workers", type=int, help="passed to pyimagecache convert --workers")
    p.add_argument("--suite", default=host_suite(), help="Debian suite (default: the host's)")
    p.add_argument("--mirror", default=None, help="Debian mirror (default: apt's)")
    p.add_argument("--json", type=Path, help="also write the raw measurements here")
    p.add_argument(
        "--digest",
        action="store_true",
        help="instead: the content digest's cost, in process, with and without it "
        f"(cases: {', '.join(c for c, _ in DIGEST_CASES)})",
    )
    p.add_argument("--sync", action="store_true", help="--digest: flush each output, as the cache")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    workdir: Path = args.workdir.resolve()
    images, out = workdir / "images", workdir / "out"
    if args.digest:
        try:
            return digest_cost(args, images, out)
        except BenchError as exc:
            print(f"bench_convert: {exc}", file=sys.stderr)
            return 1
        finally:
            shutil.rmtree(out, ignore_errors=True)
    cases = select(args.only)

    if not args.reuse and images.exists():
        shutil.rmtree(images)
    try:
        build_images(
            images, sorted({c.image for c in cases}), args.suite, args.mirror or apt_mirror()
        )
        backends = {
            c.name: inflate_backend(args.python, c.env) for c in cases if c.backend is not None
        }
        header(args, backends)
        results = []
        for case in cases:
            if case.backend is not None and backends[case.name] != case.backend:
                results.append(
                    Result(
                        case.name,
                        [],
                        [],
                        None,
                        0,
                        0,
                        0,
                        f"needs inflate backend {case.backend}, "
                        f"{args.python} has {backends[case.name]}",
                    )
                )
                continue
            log(f"{case.name}: {args.runs} alternating runs on {case.image}")
            results.append(run_case(case, images / case.image, out, args.runs, ours_command(args)))
        print_table(cases, results)
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {
                            "case": r.case,
                            "note": r.note,
                            "identical": r.identical,
                            "alloc_qemu": r.alloc_qemu,
                            "alloc_ours": r.alloc_ours,
                            "qemu": [x._asdict() for x in r.qemu],
                            "ours": [x._asdict() for x in r.ours],
                        }
                        for r in results
                    ],
                    indent=1,
                )
            )
    except BenchError as exc:
        print(f"bench_convert: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not args.reuse:
            shutil.rmtree(images, ignore_errors=True)
    return 0 if all(verdict(c, r)[0] == "ok" for c, r in zip(cases, results)) else 1


if __name__ == "__main__":
    sys.exit(main())
