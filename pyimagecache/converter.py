"""Any disk image -> sparse raw, in parallel, published atomically.

The main thread walks the image's extents once, in guest order, and cuts the ones that hold
data into tasks of about a megabyte (never splitting a compressed unit: tasks are aligned to
the image's ``granularity``). Worker threads read them with the image's thread-safe
``read_into`` (which decompresses: zlib, zlib-ng and zstd release the GIL) and write the
non-zero 4 KiB blocks with pwrite, so there is no ordering between writes to keep. At most
``workers + 2`` tasks are in flight, which bounds memory whatever the image size.

The workers are plain threads fed by a ``SimpleQueue`` rather than a ``concurrent.futures``
pool: results need no order, so two queues are all the pipeline needs, and importing
``concurrent.futures`` (which imports ``logging``) cost ~10 ms of every CLI run.

Like ``qemu-img convert`` and ``copy_disk``, the output is atomic (a hidden sibling renamed
into place) but not flushed to the disk unless ``sync=True``; the image cache always asks for
it, since it trusts a file by its existence.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from queue import SimpleQueue
from typing import Callable, Iterator, List, Optional, Tuple, Union

from ._atomic import atomic_output
from ._progress import ProgressCallback, Throttle
from ._space import check_free_space
from ._sparse import WritebackPacer, thread_buffer, write_sparse
from .diskimage import COMPRESSED, DATA, UNALLOCATED, DiskImage, Extent
from .errors import ConversionError, InvalidArgumentError, OutputError

PathLike = Union[str, "os.PathLike[str]"]

#: Guest bytes per task: large enough that Python's per-task cost vanishes next to the I/O
#: and decompression, small enough that ``workers + 2`` tasks stay within a few MiB each.
TASK_BYTES = 1 << 20
MAX_WORKERS = 8
#: Worker buffers (a task's output, the compressed input behind it, the codec's own) stay
#: within this, which caps the worker count for large compression units: peak RSS stays under
#: 64 MiB in every case.
WORKER_MEMORY = 40 << 20
#: Extents kept from the measuring walk so the conversion need not walk the metadata again.
MAX_REMEMBERED_EXTENTS = 1 << 16

Task = Callable[[], int]


def default_workers() -> int:
    """One thread per CPU this process may run on, at most ``MAX_WORKERS``."""
    try:
        count = len(os.sched_getaffinity(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, count))


class ConvertOptions:
    """How to convert, validated once (go-qcow2reader's ``convert.Options`` is the model).

    ``workers``: decompression and writing threads (default: one per CPU, at most 8; fewer
    for large compression units, to bound memory). ``sync``: flush the output to the disk
    before publishing it. ``measure``: walk the metadata first, to check the free space and
    give progress a total (off while the source is still downloading: the walk would wait for
    the whole file). ``progress(done, total)`` counts guest bytes that hold data, so its rate
    and ETA mean something; zeros and holes cost nothing and count for nothing.

    >>> ConvertOptions(workers=2, sync=True).workers
    2
    """

    __slots__ = ("measure", "progress", "sync", "workers")

    def __init__(
        self,
        *,
        workers: Optional[int] = None,
        sync: bool = False,
        measure: bool = True,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise InvalidArgumentError(f"workers must be at least 1, not {workers!r}")
        self.workers = workers
        self.sync = bool(sync)
        self.measure = bool(measure)
        self.progress = progress


def convert(
    src: PathLike,
    dst: PathLike,
    *,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    sync: bool = False,
) -> Path:
    """Convert the disk image ``src`` (any supported format, found by its magic bytes; also
    inside an OVA, a Vagrant box or an xz/gzip/zstd/bzip2/tar wrapper, unpacked first into a
    temporary file beside ``dst``) to a sparse raw disk at ``dst``; return ``dst``.

    The output is exactly the virtual size; all-zero 4 KiB blocks are never written. It is
    written to a hidden sibling and renamed onto ``dst``, so on any error ``dst`` is
    untouched; ``sync=True`` also flushes it to the disk first (as the cache does).

    >>> pyimagecache.convert("noble.img", "noble.raw", workers=2)  # doctest: +SKIP
    PosixPath('noble.raw')

    >>> import pathlib, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "in.raw").write_bytes(b"data" + bytes(8188))
    >>> convert(tmp / "in.raw", tmp / "out.raw").read_bytes()[:4]
    b'data'
    """
    from ._atomic import publish
    from .opener import open_image, unwrapped
    from .outputs import check_output

    check_output(src, dst, OutputError)
    options = ConvertOptions(workers=workers, sync=sync, progress=progress)
    # A disk in an OVA, a box or a compressed wrapper is unpacked beside dst first.
    with unwrapped(src, dst, progress) as (inner, payload):
        if inner is None:
            return convert_opened(open_image, src, dst, options)
        if payload == "raw":  # the unpacked file is the result: no second copy
            publish(inner, Path(dst), durable=sync)
            return Path(dst)
        return convert_opened(open_image, inner, dst, options)


def convert_opened(
    opener: Callable[[PathLike], DiskImage], src: PathLike, dst: PathLike, options: ConvertOptions
) -> Path:
    """Open ``src`` with ``opener`` (any format by its magic, or one format's own), convert it
    to ``dst`` and close it."""
    with opener(src) as img:
        return convert_image(img, dst, options)


def convert_image(img: DiskImage, dst: PathLike, options: Optional[ConvertOptions] = None) -> Path:
    """Convert an open image to a sparse raw disk at ``dst`` (see :func:`convert`)."""
    options = options or ConvertOptions()
    dst = Path(dst)
    remembered: Optional[List[Extent]] = None
    total: Optional[int] = None
    if options.measure:
        remembered, total = _measure(img)
        check_free_space(dst, total, f"converting {img.format} to raw")
    throttle = Throttle(options.progress)
    workers = _fit_workers(options.workers or default_workers(), img.granularity)
    extents = iter(remembered) if remembered is not None else img.extents()
    with atomic_output(dst, durable=options.sync) as tmp:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(tmp, flags, 0o666)
        except OSError as exc:
            # Name what the caller asked for, not the hidden temporary sibling.
            raise OutputError(f"cannot create {dst}: {exc.strerror or exc}") from exc
        try:
            try:
                os.ftruncate(fd, img.virtual_size)
            except OSError as exc:
                raise OutputError(
                    f"cannot create a {img.virtual_size}-byte file at {dst}: {exc.strerror}"
                ) from exc
            done = _run(img, extents, fd, workers, throttle, total, options.sync)
        except _WriteError as exc:
            cause = exc.__cause__
            reason = cause.strerror if isinstance(cause, OSError) else cause
            raise OutputError(f"cannot write {dst}: {reason}") from cause
        except OSError as exc:
            if exc.filename is None:  # a pread on the source (an I/O error)
                exc.filename = str(getattr(img, "path", "") or "") or None
            raise
        finally:
            os.close(fd)
    throttle(done, total if total is not None else done, final=True)
    return dst


def _needs_reading(img: DiskImage, kind: str) -> bool:
    return kind in (DATA, COMPRESSED) or (kind == UNALLOCATED and img.has_backing)


def _measure(img: DiskImage) -> Tuple[Optional[List[Extent]], int]:
    """The bytes the raw output will hold at most, and the extents when they are few enough
    to keep (so the conversion does not walk the metadata a second time)."""
    kept: Optional[List[Extent]] = []
    total = 0
    for extent in img.extents():
        if _needs_reading(img, extent.kind):
            total += extent.length
        if kept is not None:
            kept.append(extent)
            if len(kept) > MAX_REMEMBERED_EXTENTS:
                kept = None
    return kept, total


def _fit_workers(workers: int, granularity: int) -> int:
    """As many workers as asked for, while their buffers fit WORKER_MEMORY (2 MiB clusters
    need ~10 MiB per worker)."""
    task = max(TASK_BYTES, granularity)
    per_worker = 2 * task + 4 * granularity
    return max(1, min(workers, WORKER_MEMORY // per_worker))


class _WriteError(Exception):
    """Internal: writing the output failed (the cause is the OSError), as opposed to reading."""


def _task(img: DiskImage, fd: int, guest: int, length: int) -> Task:
    def task() -> int:
        buf = thread_buffer("task", length)
        img.read_into(guest, length, buf)
        try:
            return write_sparse(fd, guest, buf, length)
        except OSError as exc:
            raise _WriteError() from exc

    return task


def _tasks(img: DiskImage, extents: Iterator[Extent], fd: int) -> Iterator[Tuple[Task, int]]:
    """(task, guest bytes) in guest order for the extents that hold data. Tasks end on
    multiples of the task size, so each starts aligned to the image's granularity."""
    unit = max(1, img.granularity)
    step = -(-max(TASK_BYTES, unit) // unit) * unit
    for extent in extents:
        if not _needs_reading(img, extent.kind):
            continue  # zeros: the truncated file already reads as zeros
        pos, end = extent.offset, extent.offset + extent.length
        while pos < end:
            stop = min(end, (pos // step + 1) * step)
            yield _task(img, fd, pos, stop - pos), stop - pos
            pos = stop


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


def _run(
    img: DiskImage,
    extents: Iterator[Extent],
    fd: int,
    workers: int,
    progress: Throttle,
    total: Optional[int],
    sync: bool,
) -> int:
    """Run every task; return the guest bytes of data converted."""
    done = in_flight = 0
    jobs: SimpleQueue[_Job] = SimpleQueue()
    outcomes: SimpleQueue[_Outcome] = SimpleQueue()
    cancelled = threading.Event()
    # Starting writeback early only pays when the output will be flushed anyway.
    writeback = WritebackPacer(fd) if sync else None

    def complete() -> None:
        nonlocal done, in_flight
        nbytes, written, exc = outcomes.get()
        in_flight -= 1
        if exc is not None:
            raise exc
        if writeback is not None:
            writeback.wrote(written)
        done += nbytes
        progress(done, total)

    threads = [
        threading.Thread(
            target=_work, args=(jobs, outcomes, cancelled), name=f"convert-{i}", daemon=True
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for task, nbytes in _tasks(img, extents, fd):
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
    return done


__all__ = ["ConversionError", "ConvertOptions", "convert", "convert_image", "default_workers"]
