"""Any disk image -> sparse raw, in parallel, published atomically.

The main thread walks the image's extents once, in guest order, and cuts the ones that hold
data into tasks of about a megabyte. Worker threads read them with the image's thread-safe
``read_into`` (which decompresses: zlib, zlib-ng and zstd release the GIL) and write the
non-zero 4 KiB blocks with pwrite, so there is no ordering between writes to keep. At most
``workers + 2`` tasks are in flight, which bounds memory whatever the image size.

The image's ``granularity`` is the unit a read must not split (a compressed cluster or grain,
decoded whole), not its allocation unit: it shapes the tasks, and the worker count that fits
their buffers, only when the image holds compressed extents. A VHDX with 32 MiB payload blocks
or an uncompressed qcow2 with 2 MiB clusters is read in 1 MiB tasks by every worker.

With a :class:`~pyimagecache.contentdigest.ContentDigest` in the options, tasks cover whole
1 MiB regions of the output (zeros read as zeros), and each worker hashes the regions of its
buffer that the sparse writer found non-zero: the digest costs no second read and no second
scan for zeros.

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
from collections import deque
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Callable, Deque, Iterator, List, Optional, Set, Tuple, Union

from ._atomic import atomic_output
from ._progress import ProgressCallback, Throttle
from ._space import check_free_space
from ._sparse import WritebackPacer, thread_buffer, write_sparse
from .diskimage import COMPRESSED, DATA, UNALLOCATED, DiskImage, Extent
from .errors import ConversionError, InvalidArgumentError, OutputError

if TYPE_CHECKING:
    from .contentdigest import ContentDigest

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
#: contentdigest.REGION, repeated so that a conversion without a digest need not import it.
REGION = 1 << 20
#: With a digest, at most this many times ``workers + 2`` tasks since the oldest one still
#: running: the region digests waiting to be folded in order stay a few hundred bytes each.
DIGEST_WINDOW = 4

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
    and ETA mean something; zeros and holes cost nothing and count for nothing. ``digest``: a
    :class:`~pyimagecache.contentdigest.ContentDigest` that receives the output's content, for
    the caller to ``finish()`` once the conversion returned.

    >>> ConvertOptions(workers=2, sync=True).workers
    2
    """

    __slots__ = ("digest", "measure", "progress", "sync", "workers")

    def __init__(
        self,
        *,
        workers: Optional[int] = None,
        sync: bool = False,
        measure: bool = True,
        progress: Optional[ProgressCallback] = None,
        digest: Optional[ContentDigest] = None,
    ) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise InvalidArgumentError(f"workers must be at least 1, not {workers!r}")
        self.workers = workers
        self.sync = bool(sync)
        self.measure = bool(measure)
        self.progress = progress
        self.digest = digest


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
    compressed = True  # unless the measuring walk finds none
    if options.measure:
        remembered, total, compressed = _measure(img)
        check_free_space(dst, total, f"converting {img.format} to raw")
    digest = options.digest
    if digest is not None:
        digest.set_size(img.virtual_size)
    throttle = Throttle(options.progress)
    plan = _Plan(img, compressed, digest is not None)
    workers = plan.fit_workers(options.workers or default_workers())
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
            done = _run(img, extents, fd, workers, throttle, total, options.sync, plan, digest)
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


def _measure(img: DiskImage) -> Tuple[Optional[List[Extent]], int, bool]:
    """The bytes the raw output will hold at most, the extents when they are few enough to
    keep (so the conversion does not walk the metadata a second time), and whether any is
    compressed."""
    kept: Optional[List[Extent]] = []
    total = 0
    compressed = False
    for extent in img.extents():
        if _needs_reading(img, extent.kind):
            total += extent.length
            compressed = compressed or extent.kind == COMPRESSED
        if kept is not None:
            kept.append(extent)
            if len(kept) > MAX_REMEMBERED_EXTENTS:
                kept = None
    return kept, total, compressed


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def _lcm(a: int, b: int) -> int:
    from math import gcd

    return a // gcd(a, b) * b


class _Plan:
    """How the data extents are cut into tasks.

    ``unit``: what a task boundary must not split: the image's granularity when it holds
    compressed data (or may: the extents were not measured), else nothing. ``widen``: with a
    digest, tasks cover whole regions (and whole units), so each extent is widened to
    multiples of this; where widened extents overlap, the bytes are read once. ``step``: tasks
    end on its multiples (about TASK_BYTES; a multiple of the unit and, with a digest, of
    REGION).
    """

    __slots__ = ("size", "step", "unit", "widen")

    def __init__(self, img: DiskImage, compressed: bool, digest: bool) -> None:
        self.unit = max(1, img.granularity) if compressed else 1
        base = REGION if digest else 1
        self.widen = _lcm(base, self.unit) if digest else 1
        self.step = _round_up(max(TASK_BYTES, self.unit), _lcm(base, self.unit))
        self.size = img.virtual_size

    def fit_workers(self, workers: int) -> int:
        """As many workers as asked for, while their buffers fit WORKER_MEMORY (2 MiB
        compressed clusters need ~12 MiB per worker, uncompressed data 2 MiB)."""
        unit = self.unit if self.unit > 1 else 0
        per_worker = 2 * self.step + 4 * unit
        return max(1, min(workers, WORKER_MEMORY // per_worker))

    def cut(self, ranges: Iterator[Tuple[int, int]]) -> Iterator[Tuple[int, int, int]]:
        """(start, end, data bytes inside) of each task, in order, for the ordered disjoint
        data ``ranges`` (start, end). A task cut at a step boundary is held back until a range
        starts past it, since a range widened into it adds data bytes to it."""
        widen, step, size = self.widen, self.step, self.size
        task: Optional[List[int]] = None  # [start, end, data bytes] being grown
        held: Optional[List[int]] = None  # the last task cut, not yet handed out
        reach = 0  # the end of every task so far: bytes before it are never read twice
        for s, e in ranges:
            if held is not None:
                if s >= held[1]:
                    yield held[0], held[1], held[2]
                    held = None
                else:
                    held[2] += min(e, held[1]) - s
            wide_start = s - s % widen
            if task is not None:
                if s < task[1]:
                    task[2] += min(e, task[1]) - max(s, task[0])
                elif wide_start > task[1]:  # a gap: that task is complete
                    yield task[0], task[1], task[2]
                    task = None
            end = min(size, _round_up(e, widen))
            pos = max(reach, wide_start)
            while pos < end:
                if task is None:
                    task = [pos, pos, 0]
                boundary = (task[0] // step + 1) * step
                stop = min(end, boundary)
                task[2] += max(0, min(e, stop) - max(s, pos))
                task[1] = pos = reach = stop
                if stop == boundary:
                    if held is not None:  # it ends at or before s: nothing more comes into it
                        yield held[0], held[1], held[2]
                    held, task = task, None
        if held is not None:
            yield held[0], held[1], held[2]
        if task is not None:
            yield task[0], task[1], task[2]


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


def _digest_task(img: DiskImage, fd: int, guest: int, length: int, digest: ContentDigest) -> Task:
    """A task over whole regions that also hands the non-zero ones to ``digest``: the regions
    write_sparse wrote data into, hashed from the buffer it wrote them from."""

    def task() -> int:
        buf = thread_buffer("task", length)
        img.read_into(guest, length, buf)
        runs: List[Tuple[int, int]] = []
        try:
            written = write_sparse(fd, guest, buf, length, runs)
        except OSError as exc:
            raise _WriteError() from exc
        digest.add_regions(guest, buf, runs, length)
        return written

    return task


def _tasks(
    img: DiskImage,
    extents: Iterator[Extent],
    fd: int,
    plan: _Plan,
    digest: Optional[ContentDigest],
) -> Iterator[Tuple[Task, int, int, int]]:
    """(task, guest bytes of data, first guest byte, end) in guest order for the extents that hold
    data (zeros are skipped: the truncated file already reads as zeros)."""
    ranges = ((e.offset, e.offset + e.length) for e in extents if _needs_reading(img, e.kind))
    for start, end, data in plan.cut(ranges):
        if digest is None:
            yield _task(img, fd, start, end - start), data, start, end
        else:
            yield _digest_task(img, fd, start, end - start, digest), data, start, end


#: A queued task, the guest bytes of data it covers and its first guest byte; None tells a
#: worker to exit.
_Job = Optional[Tuple[Task, int, int]]
#: (guest bytes, bytes written, the exception the task raised or None, first guest byte)
_Outcome = Tuple[int, int, Optional[BaseException], int]


def _work(
    jobs: SimpleQueue[_Job], outcomes: SimpleQueue[_Outcome], cancelled: threading.Event
) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        task, nbytes, start = job
        if cancelled.is_set():  # the conversion already failed: drain without working
            outcomes.put((nbytes, 0, None, start))
            continue
        try:
            outcomes.put((nbytes, task(), None, start))
        except BaseException as exc:  # handed to the main thread, which re-raises it
            outcomes.put((nbytes, 0, exc, start))


def _run(
    img: DiskImage,
    extents: Iterator[Extent],
    fd: int,
    workers: int,
    progress: Throttle,
    total: Optional[int],
    sync: bool,
    plan: _Plan,
    digest: Optional[ContentDigest],
) -> int:
    """Run every task; return the guest bytes of data converted."""
    done = in_flight = 0
    jobs: SimpleQueue[_Job] = SimpleQueue()
    outcomes: SimpleQueue[_Outcome] = SimpleQueue()
    cancelled = threading.Event()
    # Starting writeback early only pays when the output will be flushed anyway.
    writeback = WritebackPacer(fd) if sync else None
    # With a digest: the first byte of each task not yet complete, in issue order, so that
    # the regions below the oldest can be folded (and their digests leave memory).
    issued: Deque[int] = deque()
    issued_end = 0  # where the last task issued ends
    finished: Set[int] = set()

    def complete() -> None:
        nonlocal done, in_flight
        nbytes, written, exc, start = outcomes.get()
        in_flight -= 1
        if exc is not None:
            raise exc
        if writeback is not None:
            writeback.wrote(written)
        done += nbytes
        progress(done, total)
        if digest is not None:
            finished.add(start)
            while issued and issued[0] in finished:
                finished.discard(issued.popleft())
            if issued:
                digest.settle(issued[0] // REGION)
            else:  # every task issued so far is complete
                digest.settle(issued_end // REGION)

    threads = [
        threading.Thread(
            target=_work, args=(jobs, outcomes, cancelled), name=f"convert-{i}", daemon=True
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for task, nbytes, start, end in _tasks(img, extents, fd, plan, digest):
            if digest is not None:
                issued.append(start)
                issued_end = end
            jobs.put((task, nbytes, start))
            in_flight += 1
            # A slow oldest task holds back the folding of the digests completed after it:
            # past DIGEST_WINDOW tasks, wait for it, so that their number stays bounded.
            while in_flight > workers + 2 or len(issued) > DIGEST_WINDOW * (workers + 2):
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
