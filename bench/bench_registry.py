#!/usr/bin/env python3
"""Time a pull of a 1 GiB blob from a local docker-registry against ``pyimagecache fetch`` of
the same file from a local nginx, and against ``skopeo copy``.

Generates a random (incompressible) file (``--size-mib``, default 1024), pushes it once with
``pyimagecache.oci.push_file`` to a docker-registry on 127.0.0.1 (tests/registry.py: anonymous,
plain http, filesystem storage in the work directory) and serves the same file with nginx
(tests/nginx.py). Then, ``--runs`` times each in alternating order:

- (a) ``registry``: ``fetch_disk(resolve(oci://127.0.0.1:PORT/bench:blob), DEST)``: the
  manifest, then the blob through the resumable downloader, verified against its sha256,
  fsynced, renamed (``python -c``);
- (b) ``nginx``: ``pyimagecache fetch URL DEST --sha256 HEX`` (the same downloader);
- (c) ``skopeo``: ``skopeo copy docker://127.0.0.1:PORT/bench:blob dir:DEST`` (verifies the
  digest too; does not fsync).

Each run deletes the previous outputs and calls ``sync`` first. Wall time from the clock
around the process, peak RSS from its rusage (``os.wait4``; the harness imports neither
pyimagecache nor urllib3, so the RSS inherited over fork stays small). Prints the medians,
the ratio of medians registry / nginx (bar <= 1.1) and registry / skopeo, and the peak RSS
of the registry pull (bar <= 64 MiB). Exits 1 when a bar is missed.

A script, not a test::

    .venv/bin/python bench/bench_registry.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from bench_fetch import MIB, Run, make_file, timed  # noqa: E402 - same timing as fetch's bench
from nginx import serve_dir  # noqa: E402
from registry import RegistryServer  # noqa: E402

MAX_RATIO = 1.1
RSS_BAR_MIB = 64.0

_PUSH = (
    "import sys; from pyimagecache.oci import push_file; from pyimagecache.settings import "
    "Settings; print(push_file(sys.argv[1], sys.argv[2], tag='blob', settings=Settings()))"
)
_PULL = (
    "import sys; from pyimagecache.oci import fetch_disk, resolve; "
    "from pyimagecache.settings import Settings; s = Settings(); "
    "fetch_disk(resolve(sys.argv[1], 'amd64', s), sys.argv[2], s)"
)


def clean(*paths: Path) -> None:
    """Remove the last outputs (and partials), then sync: no run pays for another's writeback."""
    for path in paths:
        for found in path.parent.glob(path.name + "*"):
            if found.is_dir():
                shutil.rmtree(found)
            else:
                found.unlink()
    os.sync()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, help="where the data and outputs go (temp dir)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for pyimagecache")
    args = parser.parse_args()
    registry_bin = shutil.which("docker-registry")
    skopeo = shutil.which("skopeo")
    if registry_bin is None or skopeo is None:
        raise SystemExit("needs docker-registry and skopeo")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    env_python = args.python
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-registry-") as tmp:
        work = Path(tmp)
        root = work / "www"
        root.mkdir()
        size = args.size_mib * MIB
        print(f"generating {args.size_mib} MiB of random data ...", flush=True)
        digest = make_file(root / "disk.img", size)
        out = work / "out"
        out.mkdir()
        dest, skopeo_dir = out / "disk.img", out / "skopeo"
        policy = work / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        with (
            RegistryServer(work / "registry", binary=registry_bin) as reg,
            serve_dir(root) as nginx,
        ):
            ref = reg.ref("bench:blob")
            print(f"pushing it to {reg.address} ...", flush=True)
            subprocess.run(
                [env_python, "-c", _PUSH, str(root / "disk.img"), f"oci://{reg.address}/bench"],
                check=True,
                cwd=REPO,
            )
            commands: Dict[str, List[str]] = {
                "registry": [env_python, "-c", _PULL, ref, str(dest)],
                "nginx": [
                    env_python,
                    "-m",
                    "pyimagecache",
                    "fetch",
                    "-q",
                    "--sha256",
                    digest,
                    nginx.url("disk.img"),
                    str(dest),
                ],
                "skopeo": [
                    skopeo,
                    "--policy",
                    str(policy),
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    f"docker://{reg.address}/bench:blob",
                    f"dir:{skopeo_dir}",
                ],
            }
            for argv in commands.values():  # warm-up: page cache, servers
                clean(dest, skopeo_dir)
                timed(argv, stdout=subprocess.DEVNULL)
            runs: Dict[str, List[Run]] = {name: [] for name in commands}
            for i in range(args.runs):
                order = list(commands) if i % 2 == 0 else list(reversed(commands))
                for name in order:
                    clean(dest, skopeo_dir)
                    runs[name].append(timed(commands[name], stdout=subprocess.DEVNULL))
                print(
                    f"run {i + 1}: " + ", ".join(f"{n} {runs[n][-1].wall:.2f}s" for n in commands),
                    flush=True,
                )
            clean(dest, skopeo_dir)

    print(f"\n{args.size_mib} MiB blob over loopback, {args.runs} runs each, alternating")
    medians = {name: statistics.median(r.wall for r in rs) for name, rs in runs.items()}
    for name, rs in runs.items():
        print(
            f"  {name:9s} median {medians[name]:6.2f} s  "
            f"({size / MIB / medians[name]:6.0f} MiB/s)  "
            f"peak RSS {max(r.rss_mib for r in rs):6.1f} MiB"
        )
    ratio = medians["registry"] / medians["nginx"]
    paired = statistics.median(a.wall / b.wall for a, b in zip(runs["registry"], runs["nginx"]))
    print(
        f"  registry / nginx: ratio of medians {ratio:.2f} (bar <= {MAX_RATIO}); "
        f"median paired ratio {paired:.2f}"
    )
    print(f"  registry / skopeo: ratio of medians {medians['registry'] / medians['skopeo']:.2f}")
    rss = max(r.rss_mib for r in runs["registry"])
    print(f"  registry pull peak RSS {rss:.1f} MiB (bar <= {RSS_BAR_MIB:.0f})")
    ok = ratio <= MAX_RATIO and rss <= RSS_BAR_MIB
    print("all bars met" if ok else "a bar was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
