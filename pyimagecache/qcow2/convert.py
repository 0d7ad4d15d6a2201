"""qcow2 -> sparse raw, in parallel, published atomically.

The main thread walks the L1/L2 tables once, in guest order, and cuts the runs into tasks of
about a megabyte: a slice of a data run, or a batch of compressed clusters read with one pread.
Worker threads read, decompress (zlib, zlib-ng and zstd release the GIL) and write the non-zero
4 KiB blocks with pwrite, so there is no ordering between writes to keep. At most
``workers + 2`` tasks are in flight, which bounds memory whatever the image size.

The workers are plain threads fed by a ``SimpleQueue`` rather than a ``concurrent.futures``
pool: results need no order, so two queues are all the pipeline needs, and importing
``concurrent.futures`` (which imports ``logging``) cost ~10 ms of every CLI run.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from queue import SimpleQueue
from typing import Callable, Iterator, List, Optional, Tuple, Union

from .._atomic import atomic_output
from .._progress import ProgressCallback, Throttle
from .._sparse import WritebackPacer, pread_into, write_sparse
from ..errors import ConversionError
from .image import Image, PathLike, open_image
from .tables import COMPRESSED, DATA, UNALLOCATED, Run

#: Guest bytes per task: large enough that Python's per-task cost vanishes next to the I/O
#: and decompression, small enough that ``workers + 2`` tasks stay within a few MiB each.
TASK_BYTES = 1 << 20
#: A batch of compressed clusters is read with one pread while its host span stays this small.
MAX_BATCH_SPAN = 4 << 20
MAX_WORKERS = 8
#: Worker buffers (input, output, one decompressed cluster, the codec's own) stay within this,
#: which caps the worker count for large clusters: peak RSS stays under 64 MiB in every case.
WORKER_MEMORY = 40 << 20

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
    ``workers`` threads decompress and write (default: one per CPU, at most 8; fewer for
    2 MiB clusters, to bound memory).

    >>> convert("noble.img", "noble.raw", workers=2)  # doctest: +SKIP
    PosixPath('noble.raw')
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    dst = Path(dst)
    throttle = Throttle(progress)
    with open_image(src) as img, atomic_output(dst) as tmp:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o666)
        except OSError as exc:
            # Name what the caller asked for, not the hidden temporary sibling.
            raise ConversionError(f"cannot create {dst}: {exc.strerror or exc}") from exc
        try:
            try:
                os.ftruncate(fd, img.virtual_size)
            except OSError as exc:
                raise ConversionError(
                    f"cannot create a {img.virtual_size}-byte file at {dst}: {exc.strerror}"
                ) from exc
            _run(img, fd, _fit_workers(workers or default_workers(), img.cluster_size), throttle)
        except _WriteError as exc:
            cause = exc.__cause__
            reason = cause.strerror if isinstance(cause, OSError) else cause
            raise ConversionError(f"cannot write {dst}: {reason}") from cause
        except OSError as exc:
            if exc.filename is None:  # a pread on the source (an I/O error)
                exc.filename = str(src)
            raise
        finally:
            os.close(fd)
    throttle(img.virtual_size, img.virtual_size, final=True)
    return dst


def _fit_workers(workers: int, cluster_size: int) -> int:
    """As many workers as asked for, while their buffers fit WORKER_MEMORY (2 MiB clusters
    need ~10 MiB per worker)."""
    per_worker = 2 * TASK_BYTES + 4 * cluster_size
    return max(1, min(workers, WORKER_MEMORY // per_worker))


class _WriteError(Exception):
    """Internal: writing the output failed (the cause is the OSError), as opposed to reading."""


def _write(
    fd: int, offset: int, data: Union[bytes, bytearray], length: Optional[int] = None
) -> int:
    try:
        return write_sparse(fd, offset, data, length)
    except OSError as exc:
        raise _WriteError() from exc


_local = threading.local()


def _buffer(name: str, size: int) -> bytearray:
    """A per-thread buffer reused across tasks: fresh multi-megabyte allocations would cost a
    page fault per 4 KiB every time, which is most of the time spent on fast inputs."""
    buf: Optional[bytearray] = getattr(_local, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        setattr(_local, name, buf)
    return buf


#: A queued task and the guest bytes it covers; None tells a worker to exit.
_Job = Optional[Tuple[Task, int]]
#: (guest bytes, bytes written, the exception the task raised or None)
_Outcome = Tuple[int, int, Optional[BaseException]]


def _work(
    jobs: SimpleQueue[_Job], outcomes: SimpleQueue[_Outcome], cancelled: threading.Event
) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        task, nbytes = job
        if cancelled.is_set():  # the conversion already failed: drain without working
            outcomes.put((nbytes, 0, None))
            continue
        try:
            outcomes.put((nbytes, task(), None))
        except BaseException as exc:  # handed to the main thread, which re-raises it
            outcomes.put((nbytes, 0, exc))


def _run(img: Image, fd: int, workers: int, progress: Throttle) -> None:
    total = img.virtual_size
    done = in_flight = 0
    jobs: SimpleQueue[_Job] = SimpleQueue()
    outcomes: SimpleQueue[_Outcome] = SimpleQueue()
    cancelled = threading.Event()
    writeback = WritebackPacer(fd)

    def complete() -> None:
        nonlocal done, in_flight
        nbytes, written, exc = outcomes.get()
        in_flight -= 1
        if exc is not None:
            raise exc
        writeback.wrote(written)
        done += nbytes
        progress(done, total)

    threads = [
        threading.Thread(
            target=_work, args=(jobs, outcomes, cancelled), name=f"qcow2-convert-{i}", daemon=True
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for task, nbytes in _tasks(img, fd):
            if task is None:
                done += nbytes
                continue
            jobs.put((task, nbytes))
            in_flight += 1
            while in_flight > workers + 2:
                complete()
        while in_flight:
            complete()
    except BaseException:
        cancelled.set()  # queued tasks are skipped; running ones finish before the join
        raise
    finally:
        for _ in threads:
            jobs.put(None)
        for thread in threads:
            thread.join()


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
        buf = _buffer("input", length)
        got = pread_into(img.data_fd, buf, length, host)
        if got < length:  # a host cluster running past the end of the file reads as zeros
            buf[got:length] = bytes(length - got)
        return _write(fd, guest, buf, length)

    return task


def _backing_task(img: Image, fd: int, guest: int, length: int) -> Task:
    def task() -> int:
        return _write(fd, guest, img.read_backing(guest, length))

    return task


def _compressed_task(img: Image, fd: int, batch: List[Run]) -> Task:
    def task() -> int:
        lo = min(r.host for r in batch)
        hi = max(r.host + r.csize for r in batch)
        inbuf = _buffer("input", hi - lo)
        got = pread_into(img.fd, inbuf, hi - lo, lo)  # short only at the end of the file
        stream = memoryview(inbuf)
        out = _buffer("output", sum(r.length for r in batch))
        # Guest-contiguous clusters are gathered so that write_sparse coalesces their pwrites.
        written = filled = 0
        group_start = batch[0].guest
        for run in batch:
            begin = run.host - lo
            cluster = img.decompress(run, stream[begin : min(got, begin + run.csize)])
            if filled and run.guest != group_start + filled:
                written += _write(fd, group_start, out, filled)
                filled = 0
            if not filled:
                group_start = run.guest
            # run.length < cluster size only for the last cluster of an odd-sized disk
            out[filled : filled + run.length] = memoryview(cluster)[: run.length]
            filled += run.length
        if filled:
            written += _write(fd, group_start, out, filled)
        return written

    return task
