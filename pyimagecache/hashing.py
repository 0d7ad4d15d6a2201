"""Digests: parsing and checking them, hashing streams and files, and the mismatch error.

Pins are SHA-256 or SHA-512 hex digests (Debian publishes only SHA-512, most others SHA-256);
an entry may pin both, and then both are checked, in the same single pass over the bytes.
Every entry point (``ensure``, ``fetch``, the catalog, the CLI) validates a digest here, so a
malformed one is the same :class:`DigestError` from all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, NamedTuple, Optional, Sequence, Union

from .errors import ChecksumMismatchError, DigestError

if TYPE_CHECKING:
    import queue

#: Supported algorithms and the hex digits of their digests.
HEX_DIGITS = {"sha256": 64, "sha512": 128}
ALGORITHMS = tuple(HEX_DIGITS)
_HEX = frozenset("0123456789abcdef")
READ_BYTES = 1 << 20

PathLike = Union[str, "Path"]


def parse_digest(value: object, algorithm: str, *, what: str = "") -> str:
    """``value`` as lowercase hex, after checking it is a digest of ``algorithm``: bare hex or
    prefixed with the algorithm as pip, pooch and OCI write it (``sha256:<hex>``); surrounding
    white space and upper case (of the digits and the prefix) are accepted, as people paste
    them, nothing else. A prefix naming another algorithm is an error naming both.

    >>> parse_digest(" AB" + "0" * 62, "sha256")
    'ab00000000000000000000000000000000000000000000000000000000000000'
    >>> parse_digest("sha256:" + "ab" * 32, "sha256") == "ab" * 32
    True
    >>> parse_digest("sha512:" + "ab" * 64, "sha256")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pyimagecache.errors.DigestError: expected a sha256 digest, got a sha512 one: 'sha512:abab...'
    """
    where = f"{what} " if what else ""
    digits = HEX_DIGITS.get(algorithm)
    if digits is None:
        raise DigestError(f"{where}unknown digest algorithm {algorithm!r} (known: sha256, sha512)")
    if not isinstance(value, str):
        raise DigestError(
            f"{where}{algorithm} must be a string of {digits} hex digits, got "
            f"{type(value).__name__}"
        )
    text = value.strip().lower()
    prefix, colon, rest = text.partition(":")
    if colon:
        shown = value.strip()
        shown = shown if len(shown) <= 24 else shown[:20] + "..."
        if prefix not in HEX_DIGITS:
            raise DigestError(
                f"{where}unknown digest algorithm {prefix!r} in {shown!r} (known: sha256, sha512)"
            )
        if prefix != algorithm:
            raise DigestError(
                f"{where}expected a {algorithm} digest, got a {prefix} one: {shown!r}"
            )
        text = rest
    if len(text) != digits or not _HEX.issuperset(text):
        raise DigestError(
            f"{where}{algorithm} must be {digits} hexadecimal digits (optionally after "
            f"'{algorithm}:'), got {value!r}"
        )
    return text


def is_digest(value: object, algorithm: str, *, canonical: bool = True) -> bool:
    """Whether ``value`` is a digest of ``algorithm`` (``canonical``: already lowercase, no
    white space, as a catalog must store it)."""
    digits = HEX_DIGITS.get(algorithm)
    if digits is None or not isinstance(value, str):
        return False
    text = value if canonical else value.strip().lower()
    return len(text) == digits and _HEX.issuperset(text)


class Expected(NamedTuple):
    """The digests a file must have; either may be None (not pinned).

    >>> Expected(sha256="a" * 64).algorithms
    ('sha256',)
    """

    sha256: Optional[str] = None
    sha512: Optional[str] = None

    @classmethod
    def parse(cls, sha256: object = None, sha512: object = None, *, what: str = "") -> Expected:
        """Validated and normalised; DigestError names the algorithm and the bad value."""
        return cls(
            None if sha256 is None else parse_digest(sha256, "sha256", what=what),
            None if sha512 is None else parse_digest(sha512, "sha512", what=what),
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(name for name, value in zip(ALGORITHMS, self) if value is not None)

    def __bool__(self) -> bool:
        return self.sha256 is not None or self.sha512 is not None

    def items(self) -> Iterable[tuple[str, str]]:
        return ((name, value) for name, value in zip(ALGORITHMS, self) if value is not None)

    def matches(self, actual: Dict[str, str]) -> bool:
        return all(actual.get(name) == value for name, value in self.items())

    def check(self, actual: Dict[str, str], url: str, path: Optional[str] = None) -> None:
        """Raise :class:`ChecksumMismatchError` for the first pinned algorithm that differs."""
        for name, value in self.items():
            if actual.get(name) != value:
                raise ChecksumMismatchError(url, value, str(actual.get(name)), path, name)

    def agrees_with(self, other: Expected) -> Optional[str]:
        """The first algorithm both pin with different values, or None."""
        for name, value in self.items():
            theirs = getattr(other, name)
            if theirs is not None and theirs != value:
                return name
        return None


class Hashes:
    """Several hashlib algorithms fed at once."""

    def __init__(self, algorithms: Sequence[str]) -> None:
        import hashlib

        self.algorithms = tuple(algorithms)
        for name in self.algorithms:
            try:
                hashlib.new(name)
            except ValueError:
                raise DigestError(f"unknown hash algorithm {name!r}") from None
        self.restart()

    def restart(self) -> None:
        import hashlib  # only where something is hashed: catalog lookups on a hit never are

        self._hashes = [hashlib.new(name) for name in self.algorithms]

    def update(self, data: bytes) -> None:
        for h in self._hashes:
            h.update(data)

    def hexdigests(self) -> Dict[str, str]:
        return {name: h.hexdigest() for name, h in zip(self.algorithms, self._hashes)}

    def close(self) -> None:
        pass


class BackgroundHashes(Hashes):
    """Hashes fed on a worker thread, so hashing overlaps receiving and writing.

    hashlib releases the GIL on large buffers, so on two cores a verified download costs about
    what an unverified one does. At most QUEUE_DEPTH chunks wait (bounded memory).
    """

    QUEUE_DEPTH = 8

    def __init__(self, algorithms: Sequence[str]) -> None:
        import queue
        import threading

        self._queue: queue.Queue[Optional[bytes]] = queue.Queue(self.QUEUE_DEPTH)
        self._error: Optional[BaseException] = None
        super().__init__(algorithms)
        self._thread = threading.Thread(target=self._work, name="pyimagecache-hash", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            data = self._queue.get()
            try:
                if data is None:
                    return
                if self._error is None:
                    super().update(data)
            except BaseException as exc:  # kept for the caller; keep draining so put() never blocks
                self._error = exc
            finally:
                self._queue.task_done()

    def _sync(self) -> None:
        self._queue.join()
        if self._error is not None:
            raise self._error

    def update(self, data: bytes) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("BackgroundHashes used after close()")
        self._queue.put(data)

    def restart(self) -> None:
        self._sync()
        super().restart()

    def hexdigests(self) -> Dict[str, str]:
        self._sync()
        return super().hexdigests()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def hashes_for(expected: Expected, extra: Sequence[str] = ()) -> Hashes:
    """The hashes a download must compute: what is pinned, plus ``extra`` (a background
    thread when there is anything to hash at all)."""
    names = tuple(dict.fromkeys((*expected.algorithms, *extra)))
    return BackgroundHashes(names) if names else Hashes(())


def file_digests(path: PathLike, algorithms: Sequence[str] = ("sha256",)) -> Dict[str, str]:
    """Hex digests of the file at ``path``, streamed in one pass (OSError propagates).

    >>> file_digests("disk.qcow2", ("sha256", "sha512"))  # doctest: +SKIP
    {'sha256': '...', 'sha512': '...'}
    """
    hashes = Hashes(algorithms)
    with open(path, "rb", buffering=0) as f:
        for data in iter(lambda: f.read(READ_BYTES), b""):
            hashes.update(data)
    return hashes.hexdigests()
