"""The content digest of a raw disk: detects any changed byte, skips holes, needs no second read.

The raw is cut into aligned regions of :data:`REGION` bytes (1 MiB; the last one is shorter
when the size is not a multiple). Each region holding a non-zero byte contributes
``index.to_bytes(8, "little") + crc32(region bytes).to_bytes(4, "little")``; an all-zero region
(a hole, or zeros written out) contributes nothing. The digest is ``"crc32-1m:"`` followed by
the hex SHA-256 of the contributions concatenated in index order. It depends only on the raw's
bytes, never on how they were produced, so anyone can recompute it::

    import hashlib, os, zlib
    def content_digest(path, region=1 << 20):
        outer = hashlib.sha256()
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            for index in range(-(-size // region)):
                data = os.pread(f.fileno(), region, index * region)
                if data != bytes(len(data)):
                    crc = zlib.crc32(data).to_bytes(4, "little")
                    outer.update(index.to_bytes(8, "little") + crc)
        return "crc32-1m:" + outer.hexdigest()

(:func:`file_content_digest` computes the same value, skipping holes with SEEK_DATA.)

What it detects: a CRC-32 catches every change confined to 32 bits of a region (any changed
byte, any burst of up to four) and misses a larger random change with odds of 2^-32 per
region; a region turned zero or non-zero changes the list. That is what a cache needs against
accidents (a VM booted on the cached disk, an editor, a bad disk); against someone who can
write the cache, no digest helps, since they can rewrite the sidecar too (SECURITY.md). A
SHA-256 per region was measured first: it cost 15% of a cold ``ensure`` of the bench qcow2
(hashing 187 MiB at ~1.8 GB/s on two busy cores); CRC-32 runs at ~5 GB/s with zlib and far
faster with zlib-ng (the ``fast`` extra), with the same values. Whole zero regions added at the
end do not change the digest, so the size is recorded beside it.

Why regions: the converter's workers already hold each region in a buffer and already know,
from the sparse writer, which blocks are zero; they checksum the non-zero regions as they go
(zlib releases the GIL), in any order, and :class:`ContentDigest` folds the per-region values
in index order. Stream writers (unpacking a container, a raw download) :meth:`feed` it
instead, in order, in chunks of any size.

>>> d = ContentDigest(size=3 * REGION)
>>> d.add(1, b"x" * REGION)
>>> d.finish() == ContentDigest.of(bytes(REGION) + b"x" * REGION + bytes(REGION))
True
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

from ._sparse import _ZERO_WINDOW, data_extents, is_zero, pread_into
from .errors import DigestError

PathLike = Union[str, "os.PathLike[str]"]
Buffer = Union[bytes, bytearray, memoryview]

#: Bytes per region: large enough that the per-region index and digest are noise next to the
#: data hashed, small enough that a changed byte names a small area.
REGION = 1 << 20
#: The digest's algorithm name, written before the hex digest.
ALGORITHM = "crc32-1m"
PREFIX = ALGORITHM + ":"

_ZEROS = memoryview(_ZERO_WINDOW)
assert len(_ZEROS) == REGION


def _crc32(data: Buffer, value: int = 0) -> int:
    """zlib's CRC-32 (zlib-ng's, the same function, when the ``fast`` extra is installed)."""
    global _crc32_impl
    if _crc32_impl is None:
        from ._codecs import inflater

        _crc32_impl = inflater()[0].crc32
    return int(_crc32_impl(data, value))


_crc32_impl: Optional[Callable[[Buffer, int], int]] = None


class _RegionHash:
    """One region's CRC-32, updated as its bytes arrive (what :meth:`ContentDigest.feed`
    keeps for the region being streamed)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Buffer) -> None:
        self.value = _crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "little")


def region_digest(region: Buffer) -> bytes:
    """What one non-zero region contributes after its index: its CRC-32, little-endian."""
    return _crc32(region).to_bytes(4, "little")


def _hash_zeros(h: _RegionHash, count: int) -> None:
    while count > 0:
        n = min(count, REGION)
        h.update(_ZEROS[:n])
        count -= n


def regions_with_data(runs: Sequence[Tuple[int, int]]) -> Iterator[int]:
    """The indices of the regions that the (start, end) byte ranges ``runs`` (ordered, as
    :func:`~pyimagecache._sparse.write_sparse` reports what it wrote) touch, in order, once.

    >>> list(regions_with_data([(0, 10), (4096, 8192), (REGION - 1, REGION + 1)]))
    [0, 1]
    """
    last = -1
    for start, end in runs:
        if end <= start:
            continue
        for index in range(max(start // REGION, last + 1), (end - 1) // REGION + 1):
            yield index
            last = index


class ContentDigest:
    """Accumulates the content digest of a raw disk of ``size`` bytes (see the module
    docstring); ``size`` may instead be given later (:meth:`set_size`, :meth:`finish`).

    Two ways in, not to be mixed: :meth:`add` whole regions from any thread in any order, or
    :meth:`feed` the bytes in file order in chunks of any size. Regions never given are zero.
    Per-region digests wait in memory only until :meth:`settle` (or :meth:`feed`) says no
    earlier region is still to come, so memory stays small whatever the disk size.

    >>> d = ContentDigest()
    >>> d.feed(5, b"abc")
    >>> d.feed(REGION + 7, b"\\1")
    >>> raw = bytes(5) + b"abc" + bytes(REGION - 1) + b"\\1" + bytes(REGION - 8)
    >>> d.finish(2 * REGION) == ContentDigest.of(raw)
    True
    """

    def __init__(self, size: Optional[int] = None) -> None:
        self.size: Optional[int] = None
        self._lock = threading.Lock()
        self._pending: Dict[int, bytes] = {}  # region index -> its CRC-32, not yet folded
        self._outer = hashlib.sha256()
        self._folded = 0  # every region below this is folded, or zero
        self._short: Optional[Tuple[int, int]] = None  # (index, length) of a short region added
        self._top = -1  # the highest region index added
        # feed(): the region being streamed, its hash (None while all its bytes are zero) and
        # how many of its bytes were seen.
        self._fed = 0
        self._current = -1
        self._current_hash: Optional[_RegionHash] = None
        self._current_length = 0
        self._result: Optional[str] = None
        if size is not None:
            self.set_size(size)

    @classmethod
    def of(cls, data: Buffer) -> str:
        """The content digest of the raw disk whose bytes are ``data``.

        Zeros contribute nothing, so the size is not part of the value (the sidecar records
        it beside the digest):

        >>> ContentDigest.of(bytes(3 * REGION)) == ContentDigest.of(b"")
        True
        >>> ContentDigest.of(bytes(4096))
        'crc32-1m:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
        """
        d = cls(len(data))
        d.feed(0, data)
        return d.finish()

    # -- the size ------------------------------------------------------------------------------
    def set_size(self, size: int) -> None:
        """The raw's size in bytes, once known (the converter sets the virtual size)."""
        if not isinstance(size, int) or size < 0:
            raise DigestError(f"content digest: the size must be a whole number, not {size!r}")
        if self.size is not None and self.size != size:
            raise DigestError(
                f"content digest: the size was given as {self.size} bytes, now as {size}"
            )
        if self._fed > size or self._top >= -(-size // REGION):
            raise DigestError(f"content digest: data was given past the end of a {size}-byte disk")
        if self._short is not None:
            self._check_length(*self._short, size)
        last_is_short = self._top >= 0 and self._top == (size - 1) // REGION and size % REGION
        if last_is_short and (self._short is None or self._short[0] != self._top):
            raise DigestError(
                f"content digest: region {self._top} was given {REGION} bytes, but it is "
                f"the last region of a {size}-byte disk ({size % REGION} bytes)"
            )
        self.size = size

    @staticmethod
    def _check_length(index: int, length: int, size: int) -> None:
        expected = min(REGION, size - index * REGION)
        if length != expected:
            raise DigestError(
                f"content digest: region {index} of a {size}-byte disk has {expected} bytes, "
                f"{length} were given"
            )

    # -- whole regions, any order, any thread -------------------------------------------------
    def add(self, index: int, region: Buffer, *, nonzero: bool = False) -> None:
        """Take region ``index`` whole (``REGION`` bytes, the last region of the disk fewer).
        An all-zero region contributes nothing; ``nonzero=True`` says the caller already knows
        it holds a non-zero byte (so it is not scanned again). Thread-safe; the hashing runs
        outside the lock and, on a large buffer, outside the GIL."""
        length = len(region) if not isinstance(region, memoryview) else region.nbytes
        if not isinstance(index, int) or index < 0 or not 0 < length <= REGION:
            raise DigestError(
                f"content digest: a region is 1 to {REGION} bytes at an index >= 0, "
                f"not {length} bytes at {index!r}"
            )
        if self.size is not None:
            self._check_length(index, length, self.size)
        if not nonzero:
            data = region if not isinstance(region, memoryview) else bytes(region)
            if is_zero(data):
                return
        self._store(index, length, region_digest(region))

    def add_regions(
        self,
        offset: int,
        data: Buffer,
        runs: Sequence[Tuple[int, int]],
        length: Optional[int] = None,
    ) -> None:
        """Take the whole regions ``data[:length]`` starting at ``offset`` (a multiple of
        ``REGION``; the data ends on a region boundary or at the end of the disk), knowing
        that every non-zero byte is inside the absolute (start, end) ``runs`` (what
        :func:`~pyimagecache._sparse.write_sparse` reported writing them): only the regions
        the runs touch are hashed, none is scanned for zeros again."""
        n = len(data) if length is None else length
        if offset % REGION:
            raise DigestError(f"content digest: offset {offset} is not a multiple of {REGION}")
        view = memoryview(data)
        first = offset // REGION
        for index in regions_with_data(runs):
            start = (index - first) * REGION
            if not 0 <= start < n:
                raise DigestError(
                    f"content digest: a run at region {index} lies outside the "
                    f"{n} bytes at {offset}"
                )
            self.add(index, view[start : min(n, start + REGION)], nonzero=True)

    def _store(self, index: int, length: int, digest: bytes) -> None:
        with self._lock:
            if self._result is not None:
                raise DigestError("content digest: data given after finish()")
            if index < self._folded or index in self._pending:
                raise DigestError(f"content digest: region {index} was given twice")
            if length < REGION:
                if index < self._top:
                    raise DigestError(
                        f"content digest: region {index} is shorter than a region but region "
                        f"{self._top} follows it; only the last region of a disk can be"
                    )
                if self._short is not None and self._short[0] != index:
                    raise DigestError(
                        f"content digest: regions {self._short[0]} and {index} are both "
                        "shorter than a region; only the last region of a disk can be"
                    )
                self._short = (index, length)
            if self._short is not None and index > self._short[0]:
                raise DigestError(
                    f"content digest: region {index} follows the short (last) region "
                    f"{self._short[0]}"
                )
            self._top = max(self._top, index)
            self._pending[index] = digest

    def settle(self, below: int) -> None:
        """No region below index ``below`` will be given any more: fold their digests, in
        order, and free them (the converter calls this as its tasks complete)."""
        with self._lock:
            if below <= self._folded:
                return
            ready = sorted(i for i in self._pending if i < below)
            outer = self._outer
            for index in ready:
                outer.update(index.to_bytes(8, "little") + self._pending.pop(index))
            self._folded = below

    # -- a stream, in order ---------------------------------------------------------------------
    def feed(
        self, offset: int, data: Buffer, runs: Optional[Sequence[Tuple[int, int]]] = None
    ) -> None:
        """Take the bytes ``data`` at ``offset``, in file order (``offset`` at or after the end
        of the previous call; bytes skipped are zeros). Each region is hashed as its bytes
        arrive and folded once complete. ``runs``, when the caller knows them (what
        :func:`~pyimagecache._sparse.write_sparse` wrote from ``data``), spares a second scan
        for zeros."""
        buf = data if isinstance(data, (bytes, bytearray)) else bytes(data)
        n = len(buf)
        if offset < self._fed:
            raise DigestError(
                f"content digest: data at {offset} fed after data up to {self._fed} "
                "(feed() takes the bytes in order)"
            )
        if self.size is not None and offset + n > self.size:
            raise DigestError(
                f"content digest: {n} bytes at {offset} pass the end of a {self.size}-byte disk"
            )
        if n == 0:
            return
        view = memoryview(buf)
        pos, end = offset, offset + n
        run_at = 0
        while pos < end:
            index, within = divmod(pos, REGION)
            if index != self._current:
                self._close_current(REGION)
                self._current, self._current_hash, self._current_length = index, None, 0
            stop = min(end, (index + 1) * REGION)
            if runs is None:
                nonzero = not is_zero(buf, stop - offset, pos - offset)
            else:
                while run_at < len(runs) and runs[run_at][1] <= pos:
                    run_at += 1
                nonzero = run_at < len(runs) and runs[run_at][0] < stop
            h = self._current_hash
            if h is not None:
                _hash_zeros(h, within - self._current_length)  # a gap: zeros
                h.update(view[pos - offset : stop - offset])
            elif nonzero:  # the region's first data: every byte before it was zero
                h = self._current_hash = _RegionHash()
                _hash_zeros(h, within)
                h.update(view[pos - offset : stop - offset])
            self._current_length = stop - index * REGION
            pos = stop
        self._fed = end

    def _close_current(self, region_end: int) -> None:
        """Complete the region being fed (zeros up to ``region_end`` bytes into it) and fold
        everything up to it."""
        if self._current < 0:
            return
        h = self._current_hash
        if h is not None:
            _hash_zeros(h, region_end - self._current_length)
            self._store(self._current, region_end, h.digest())
        self.settle(self._current + 1)
        self._current, self._current_hash = -1, None

    # -- the result ----------------------------------------------------------------------------
    def finish(self, size: Optional[int] = None) -> str:
        """The content digest, ``"crc32-1m:<hex>"``; ``size`` is the raw's size unless it was
        given before. Idempotent; nothing may be added afterwards."""
        if self._result is not None:
            if size is not None and size != self.size:
                self.set_size(size)  # raises: a different size
            return self._result
        if size is not None:
            self.set_size(size)
        if self.size is None:
            raise DigestError("content digest: finish() needs the disk's size")
        if self._current >= 0:
            self._close_current(min(REGION, self.size - self._current * REGION))
        self.settle(-(-self.size // REGION))
        with self._lock:
            self._result = PREFIX + self._outer.hexdigest()
        return self._result


class BackgroundFeed:
    """:meth:`ContentDigest.feed` on a worker thread, so that a stream writer (the unpacker,
    whose decoders release the GIL too) hashes on the other core while it decodes. At most
    ``QUEUE_DEPTH`` chunks wait (bounded memory); the chunks must not change once given (the
    decoders' bytes objects do not). :meth:`close` waits for the rest and re-raises what the
    worker raised.

    >>> d = ContentDigest()
    >>> with BackgroundFeed(d) as feed:
    ...     feed.feed(0, b"boot")
    >>> d.finish(512) == ContentDigest.of(b"boot" + bytes(508))
    True
    """

    QUEUE_DEPTH = 8

    def __init__(self, digest: ContentDigest) -> None:
        import queue

        self.digest = digest
        self._queue: queue.Queue[Optional[Tuple[int, Buffer, Optional[Sequence[Tuple[int, int]]]]]]
        self._queue = queue.Queue(self.QUEUE_DEPTH)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._work, name="pyimagecache-digest", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self.digest.feed(*item)
                except BaseException as exc:  # kept for close(); keep draining so put() returns
                    self._error = exc

    def feed(
        self, offset: int, data: Buffer, runs: Optional[Sequence[Tuple[int, int]]] = None
    ) -> None:
        """Queue ``digest.feed(offset, data, runs)``."""
        if self._error is not None:
            raise self._error
        self._queue.put((offset, data, runs))

    def close(self) -> None:
        """Wait until everything queued is fed; raise what feeding raised."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> BackgroundFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_content_digest(path: PathLike) -> str:
    """The content digest of the raw disk at ``path``, reading only its data (SEEK_DATA /
    SEEK_HOLE): what ``cache verify`` compares with the sidecar. OSError propagates.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.raw"
    >>> with open(p, "wb") as f:
    ...     _ = f.write(b"MBR")
    ...     _ = f.truncate(5 * REGION)
    >>> file_content_digest(p) == ContentDigest.of(b"MBR" + bytes(5 * REGION - 3))
    True
    """
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        digest = ContentDigest(size)
        buf = bytearray(REGION)
        after = 0  # the next region not yet read
        for start, end in data_extents(fd, size):
            for index in range(max(start // REGION, after), (end - 1) // REGION + 1):
                at = index * REGION
                n = min(REGION, size - at)
                if pread_into(fd, buf, n, at) < n:
                    raise OSError(f"{path} shrank while its content digest was computed")
                if not is_zero(buf, n):
                    digest.add(index, memoryview(buf)[:n], nonzero=True)
                digest.settle(index + 1)
                after = index + 1
        return digest.finish()


__all__ = [
    "ALGORITHM",
    "PREFIX",
    "REGION",
    "ContentDigest",
    "file_content_digest",
    "regions_with_data",
]
