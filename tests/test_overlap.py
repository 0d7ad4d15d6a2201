"""ensure() converting while it downloads: in step when the tables come first, after the
download when they come last, and verified or clean under every fault schedule."""

from __future__ import annotations

import hashlib
import lzma
import random
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import require_tool
from faultserver import FaultServer
from qcow2writer import Data, Qcow2Writer

from pyimagecache.errors import ChecksumMismatchError, DownloadError
from pyimagecache.settings import Retry, Settings

MiB = 1 << 20
FAST = Settings(retry=Retry(total=4, backoff_base=0.001, backoff_max=0.005))


def random_disk(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(size)
    for start in range(0, size, 256 << 10):  # data in every 256 KiB: a table in step with it
        buf[start : start + 100_000] = rng.randbytes(100_000)
    return bytes(buf)


def qcow2_from(tmp: Path, data: bytes, *compress: str) -> bytes:
    qemu_img = require_tool("qemu-img")
    raw, out = tmp / "src.raw", tmp / "src.qcow2"
    raw.write_bytes(data)
    subprocess.run(
        [qemu_img, "convert", "-f", "raw", "-O", "qcow2", *compress, str(raw), str(out)], check=True
    )
    image = out.read_bytes()
    raw.unlink()
    out.unlink()
    return image


class Timeline:
    """Progress calls per phase with the time each arrived."""

    def __init__(self) -> None:
        self.calls: Dict[str, List[Tuple[float, int, Optional[int]]]] = {}
        self.lock = threading.Lock()

    def progress_for(self, phase: str) -> Any:
        def report(done: int, total: Optional[int]) -> None:
            with self.lock:
                self.calls.setdefault(phase, []).append((time.monotonic(), done, total))

        return report


def ensure_phased(url: str, cache: Path, timeline: Timeline, **kw: Any) -> Path:
    from pyimagecache.cache import ensure_phased as phased

    return phased(url, cache, progress_for=timeline.progress_for, settings=FAST, **kw)


def leftovers(cache: Path) -> List[str]:
    """Partial downloads and temporaries (lock files stay, by design)."""
    return sorted(
        p.name
        for p in cache.iterdir()
        if (p.name.startswith(".") or ".part" in p.name) and not p.name.endswith(".lock")
    )


@pytest.mark.qemu
@pytest.mark.parametrize("compress", [[], ["-c"]], ids=["plain", "deflate"])
def test_qcow2_converts_while_it_downloads(tmp_path: Path, compress: List[str]) -> None:
    disk = random_disk(8 * MiB, 1)
    image = qcow2_from(tmp_path, disk, *compress)
    with FaultServer(image, rate=len(image) / 1.5) as server:  # about 1.5 s to download
        timeline = Timeline()
        cache = tmp_path / "cache"
        raw = ensure_phased(server.url, cache, timeline, sha256=hashlib.sha256(image).hexdigest())
    assert raw.read_bytes() == disk
    download, convert = timeline.calls["download"], timeline.calls["convert"]
    download_end = max(t for t, _, _ in download)
    converted_before_end = [d for t, d, _ in convert if t < download_end - 0.2]
    # Data was converted while bytes were still arriving, not only after the download.
    assert converted_before_end and max(converted_before_end) > 0, (convert[:5], download_end)
    assert leftovers(cache) == []


def tables_at_the_end(size: int, seed: int) -> Tuple[bytes, bytes]:
    """A qcow2 (from the test writer) whose L2 tables are moved behind all the data, as an
    image written table-last would have them: the converter must wait for them."""
    rng = random.Random(seed)
    cs = 1 << 16
    w = Qcow2Writer(size)
    for c in range(0, size // cs, 3):
        w[c] = Data(rng.randbytes(cs))
    built = w.build()
    data = bytearray(built.bytes())
    data += bytes(-len(data) % cs)
    l1_count = -(-w.nb_clusters // w.l2_entries)
    for index in range(l1_count):
        at = built.l1_entry_offset(index)
        entry = struct.unpack_from(">Q", data, at)[0]
        offset = entry & 0x00FFFFFFFFFFFE00
        if not offset:
            continue
        table = bytes(data[offset : offset + cs])
        data[offset : offset + cs] = bytes(cs)  # the old place no longer holds the table
        new = len(data)
        data += table
        struct.pack_into(">Q", data, at, (entry & ~0x00FFFFFFFFFFFE00) | new)
    return bytes(data), w.expected()


def test_tables_at_the_end_still_convert(tmp_path: Path) -> None:
    image, expected = tables_at_the_end(6 * MiB, 2)
    with FaultServer(image, rate=len(image) / 1.0) as server:
        timeline = Timeline()
        raw = ensure_phased(
            server.url, tmp_path / "c", timeline, sha256=hashlib.sha256(image).hexdigest()
        )
    assert raw.read_bytes() == expected
    assert leftovers(tmp_path / "c") == []


def test_container_unpacks_while_it_downloads(tmp_path: Path) -> None:
    disk = random_disk(8 * MiB, 3)
    packed = lzma.compress(disk, preset=0)
    with FaultServer(packed, rate=len(packed) / 1.0) as server:
        timeline = Timeline()
        raw = ensure_phased(
            server.url, tmp_path / "c", timeline, sha256=hashlib.sha256(packed).hexdigest()
        )
    assert raw.read_bytes() == disk
    download_end = max(t for t, _, _ in timeline.calls["download"])
    assert [t for t, _, _ in timeline.calls["convert"] if t < download_end - 0.2]


# -- faults during the overlap: verified, or clean ----------------------------------------------

SCHEDULES = [
    ("drop", ["drop:300000"]),
    ("drop-twice", ["drop:200000", "drop:900000"]),
    ("200-for-206", ["drop:400000", "ignore_range"]),
    ("changed-etag", ["drop:400000", "new_etag"]),
    ("replaced", ["drop:400000", "replace"]),
    ("stall", ["stall:0.2"]),
]


@pytest.mark.qemu
@pytest.mark.parametrize(("name", "faults"), SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_faults_end_verified_or_clean(tmp_path: Path, name: str, faults: List[str]) -> None:
    disk = random_disk(4 * MiB, 4)
    image = qcow2_from(tmp_path, disk)
    pin = hashlib.sha256(image).hexdigest()
    with FaultServer(image, rate=len(image) / 1.0) as server:
        server.schedule(*faults)
        cache = tmp_path / "cache"
        try:
            raw = ensure_phased(server.url, cache, Timeline(), sha256=pin)
        except (DownloadError, ChecksumMismatchError):
            assert name == "replaced", name  # upstream really changed: the pin must fail
            assert list(cache.glob("*.raw")) == []
            assert [n for n in leftovers(cache) if n.startswith(".")] == []
            return
    assert name != "replaced"
    assert raw.read_bytes() == disk
    assert leftovers(cache) == []


@pytest.mark.qemu
def test_wrong_digest_discards_the_converted_output(tmp_path: Path) -> None:
    image = qcow2_from(tmp_path, random_disk(4 * MiB, 5))
    with FaultServer(image, rate=len(image) / 0.5) as server:
        cache = tmp_path / "cache"
        with pytest.raises(ChecksumMismatchError, match="SHA-256 mismatch"):
            ensure_phased(server.url, cache, Timeline(), sha256="0" * 64)
    assert list(cache.glob("*.raw")) == []
    assert leftovers(cache) == []  # no scratch output, no partial (a mismatch is discarded)


@pytest.mark.qemu
def test_failed_download_keeps_its_partial_and_no_output(tmp_path: Path) -> None:
    image = qcow2_from(tmp_path, random_disk(4 * MiB, 6))
    pin = hashlib.sha256(image).hexdigest()
    with FaultServer(image, rate=len(image) / 0.5) as server:
        server.schedule("drop:1000000", *["500"] * 4)  # five failures: one more than allowed
        cache = tmp_path / "cache"
        with pytest.raises(DownloadError):
            ensure_phased(server.url, cache, Timeline(), sha256=pin)
        assert list(cache.glob("*.raw")) == []
        assert [n for n in leftovers(cache) if n.startswith(".")] == []
        assert [n for n in leftovers(cache) if n.endswith(".part")]  # kept for the resume
        raw = ensure_phased(server.url, cache, Timeline(), sha256=pin)
        assert any(r.range for r in server.log[-1:]), server.log  # the rest, not all of it
    assert raw.stat().st_size == 4 * MiB


def test_memory_stays_bounded_while_overlapping(tmp_path: Path) -> None:
    """A 64 MiB xz container through the overlap: peak RSS of the child stays well under
    64 MiB (bounded queues and buffers, whatever the image size)."""
    disk = random_disk(64 * MiB, 7)
    packed = lzma.compress(disk, preset=0)
    src = tmp_path / "www.xz"
    src.write_bytes(packed)
    with FaultServer(packed) as server:
        code = (
            "import pyimagecache\n"
            f"p = pyimagecache.ensure({server.url!r}, {str(tmp_path / 'c')!r}, "
            f"sha256={hashlib.sha256(packed).hexdigest()!r})\n"
            # VmHWM, not ru_maxrss: Linux carries the parent's peak over exec into the latter.
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        )
        import sys

        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
    assert int(out.stdout.split()[-1]) < 64 * 1024, out.stdout  # KiB on Linux
