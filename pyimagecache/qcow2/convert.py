"""qcow2 -> sparse raw, in parallel, published atomically.

The main thread walks the L1/L2 tables once, in guest order, and cuts the runs into tasks of
about a megabyte: a slice of a data run, or a batch of compressed clusters read with one pread.
Worker threads read, decompress (zlib, zlib-ng and zstd release the GIL) and write the non-zero
4 KiB blocks with pwrite, so there is no ordering between writes to keep. At most
``workers + 2`` tasks are in flight, which bounds memory whatever the image size.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Deque, Iterator, List, Optional, Tuple

from .._atomic import atomic_output
from .._progress import ProgressCallback, Throttle
from .._sparse import write_sparse
from ..errors import ConversionError
from .image import Image, PathLike, open_image
from .tables import COMPRESSED, DATA, UNALLOCATED, Run

#: Guest bytes per task: large enough that Python's per-task cost vanishes next to the I/O
#: and decompression, small enough that ``workers + 2`` tasks stay within a few MiB each.
TASK_BYTES = 1 << 20
#: A batch of compressed clusters is read with one pread while its host span stays this small.
MAX_BATCH_SPAN = 4 << 20
MAX_WORKERS = 8

Task = Callable[[], int]


def default_workers() -> int:
    """One thread per CPU this process may run on, at most ``MAX_WORKERS``."""
    try:
        count = len(os.sched_getaffinity(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, count))


def convert(
    src: PathLike,
    dst: PathLike,
    *,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
) -> Path:
    """Convert the qcow2 image ``src`` to a sparse raw disk at ``dst``; return ``dst``.

    The output is exactly the virtual size; all-zero 4 KiB blocks are never written. It is
    written to a hidden sibling, fsynced and renamed onto ``dst``, so on any error ``dst`` is
    untouched. ``progress(done, total)`` is called a few times a second and once at the end.

    >>> convert("noble.img", "noble.raw", workers=2)  # doctest: +SKIP
    PosixPath('noble.raw')
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    dst = Path(dst)
    throttle = Throttle(progress)
    with open_image(src) as img, atomic_output(dst) as tmp:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(tmp, flags, 0o666)
        try:
            try:
                os.ftruncate(fd, img.virtual_size)
            except OSError as exc:
                raise ConversionError(
                    f"cannot create a {img.virtual_size}-byte file at {dst}: {exc.strerror}"
                ) from None
            _run(img, fd, workers or default_workers(), throttle)
        finally:
            os.close(fd)
    throttle(img.virtual_size, img.virtual_size, final=True)
    return dst


def _run(img: Image, fd: int, workers: int, progress: Throttle) -> None:
    total = img.virtual_size
    done = 0
    pending: Deque[Tuple[Future[int], int]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="qcow2-convert") as pool:
        try:
            for task, nbytes in _tasks(img, fd):
                if task is None:
                    done += nbytes
                    continue
                pending.append((pool.submit(task), nbytes))
                while len(pending) > workers + 2:
                    future, n = pending.popleft()
                    future.result()
                    done += n
                    progress(done, total)
            while pending:
                future, n = pending.popleft()
                future.result()
                done += n
                progress(done, total)
        except BaseException:
            # Stop queued work at once; running tasks finish before the pool exits.
            for future, _ in pending:
                future.cancel()
            raise


def _tasks(img: Image, fd: int) -> Iterator[Tuple[Optional[Task], int]]:
    """(task, guest bytes) in guest order; task None for ranges that stay holes."""
    batch: List[Run] = []
    batch_bytes = 0
    for run in img.runs(cache=False):
        if run.kind == COMPRESSED:
            if batch and (
                batch_bytes >= TASK_BYTES
                or run.host + run.csize - batch[0].host > MAX_BATCH_SPAN
                or run.host < batch[0].host
            ):
                yield _compressed_task(img, fd, batch), batch_bytes
                batch, batch_bytes = [], 0
            batch.append(run)
            batch_bytes += run.length
            continue
        if batch:
            yield _compressed_task(img, fd, batch), batch_bytes
            batch, batch_bytes = [], 0
        if run.kind == DATA:
            for off in range(0, run.length, TASK_BYTES):
                n = min(TASK_BYTES, run.length - off)
                yield _data_task(img, fd, run.host + off, run.guest + off, n), n
        elif run.kind == UNALLOCATED and img.backing is not None:
            for off in range(0, run.length, TASK_BYTES):
                n = min(TASK_BYTES, run.length - off)
                yield _backing_task(img, fd, run.guest + off, n), n
        else:
            yield None, run.length  # zeros: the truncated file already reads as zeros
    if batch:
        yield _compressed_task(img, fd, batch), batch_bytes


def _data_task(img: Image, fd: int, host: int, guest: int, length: int) -> Task:
    def task() -> int:
        return write_sparse(fd, guest, img.read_host(host, length))

    return task


def _backing_task(img: Image, fd: int, guest: int, length: int) -> Task:
    def task() -> int:
        return write_sparse(fd, guest, img.read_backing(guest, length))

    return task


def _compressed_task(img: Image, fd: int, batch: List[Run]) -> Task:
    def task() -> int:
        lo = min(r.host for r in batch)
        hi = max(r.host + r.csize for r in batch)
        view = memoryview(img.read_compressed_span(lo, hi - lo))
        written = 0
        # Guest-contiguous clusters are joined so that write_sparse coalesces their pwrites.
        group: List[bytes] = []
        group_start = group_end = batch[0].guest
        for run in batch:
            cluster = img.decompress(run, view[run.host - lo : run.host - lo + run.csize])
            if run.length < len(cluster):
                cluster = cluster[: run.length]  # the last cluster of an odd-sized disk
            if group and run.guest != group_end:
                written += write_sparse(fd, group_start, b"".join(group))
                group = []
            if not group:
                group_start = run.guest
            group.append(cluster)
            group_end = run.guest + run.length
        if group:
            written += write_sparse(fd, group_start, b"".join(group))
        return written

    return task
