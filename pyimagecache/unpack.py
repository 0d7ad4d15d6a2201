"""Stream xz / gzip / zstd / bzip2 files and tar archives holding one disk image into a sparse file.

Everything is read in bounded chunks, so memory stays flat whatever the image size, and only
non-zero 4 KiB blocks are written. A tar member is taken at the size its header declares; a bare
compressed stream is capped at :data:`MAX_OUTPUT` so a decompression bomb cannot fill the disk
with an endless file. The payload is returned with its own format: raw, or qcow2 (a compressed
qcow2 still needs converting).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tarfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, List, NamedTuple, Optional, Tuple, Union, cast

from . import formats
from ._codecs import open_zstd_stream
from ._progress import ProgressCallback, Throttle
from ._sparse import write_sparse
from .cachefiles import DISK_EXTENSIONS
from .errors import (
    ContainerError,
    ExternalReferenceError,
    MissingExtraError,
    UnsupportedFormatError,
    UnsupportedImageError,
)
from .sourcefile import SourceFile, SourceStream, as_source

if TYPE_CHECKING:
    from .contentdigest import BackgroundFeed, ContentDigest

#: Bytes read from a decompressor or tar member at a time.
STREAM_BYTES = 1 << 20
#: Largest disk a bare compressed stream may expand to (a tar header states its own size).
MAX_OUTPUT = 1 << 42

#: Payload formats unpack() can hand back: the caller publishes raw and converts the others.
PAYLOADS = (formats.RAW, *formats.DISK_FORMATS)


class MemberRule(NamedTuple):
    """Which member of a tar archive is the disk: ``accept(member)`` says yes or no, or raises
    ContainerError to refuse the whole archive (say, a link where the disk should be);
    ``wanted`` describes the disk for the error when no member is accepted. With a rule, the
    source must be a tar archive (plain or compressed)."""

    accept: Callable[[tarfile.TarInfo], bool]
    wanted: str


def _looks_like_disk(member: tarfile.TarInfo) -> bool:
    base = _member_base(member).lower()
    return member.isreg() and (base == "disk" or any(base.endswith(e) for e in DISK_EXTENSIONS))


#: The default: the disk an OVF descriptor names, else the one regular file named like a disk.
DISK_MEMBER = MemberRule(
    _looks_like_disk, f"a regular file named disk or *{', *'.join(DISK_EXTENSIONS)}"
)


class _ReadFailure(Exception):
    """A decoder failed while reading; carries the original so that writes are never blamed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Reader:
    """Wrap a stream: count bytes, report progress and turn decoder errors into _ReadFailure."""

    def __init__(self, stream: IO[bytes], report: Optional[Callable[[int], None]] = None):
        self._stream = stream
        self._report = report
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._stream.read(n)
        except (MissingExtraError, _ReadFailure):
            raise
        except Exception as exc:  # lzma, zlib, zstd and EOFError all mean "bad input" here
            raise _ReadFailure(exc) from exc
        self.count += len(data)
        if self._report is not None:
            self._report(self.count)
        return data


class _Prefixed:
    """A stream whose first bytes were already read (to sniff them) and are put back."""

    def __init__(self, head: bytes, rest: _Reader) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                head, self._head = self._head, b""
                return head + (self._rest.read(n - len(head)) if n > len(head) else b"")
            head, self._head = self._head[:n], self._head[n:]
            return head
        return self._rest.read(n)


def _read_exact(stream: _Reader, n: int) -> bytes:
    parts: List[bytes] = []
    got = 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _Output:
    """The sparse file being written, and the content digest fed from the very chunks
    written, on another thread so that hashing overlaps decoding (``feed`` None: not wanted,
    or dropped once the payload shows a disk format, whose converted raw the converter
    digests instead)."""

    __slots__ = ("fd", "feed")

    def __init__(self, fd: int, digest: Optional[ContentDigest]) -> None:
        self.fd = fd
        self.feed: Optional[BackgroundFeed] = None
        if digest is not None:
            from .contentdigest import BackgroundFeed

            self.feed = BackgroundFeed(digest)

    def write(self, offset: int, data: bytes) -> None:
        if self.feed is None:
            write_sparse(self.fd, offset, data)
            return
        runs: List[Tuple[int, int]] = []
        write_sparse(self.fd, offset, data, runs=runs)
        self.feed.feed(offset, data, runs)

    def payload_is(self, fmt: str) -> None:
        """The payload's format as its head shows it: only a raw one is worth digesting."""
        if fmt != formats.RAW:
            self.close(raising=False)

    def close(self, raising: bool = True) -> None:
        """Wait for the digest to have every byte written (raising what feeding raised)."""
        feed, self.feed = self.feed, None
        if feed is not None:
            try:
                feed.close()
            except BaseException:
                if raising:
                    raise


def _open_decoder(fmt: str, raw: IO[bytes]) -> IO[bytes]:
    if fmt == formats.XZ:
        return lzma.open(raw, "rb")
    if fmt == formats.BZIP2:
        return bz2.open(raw, "rb")
    if fmt == formats.GZIP:
        return cast("IO[bytes]", gzip.open(raw, "rb"))
    if fmt == formats.ZSTD:
        return open_zstd_stream(raw)
    raise ContainerError(f"not a compressed format: {fmt}")


def unpack(
    src: Union[Path, SourceFile],
    dst: Path,
    *,
    progress: Optional[ProgressCallback] = None,
    rule: Optional[MemberRule] = None,
    digest: Optional[ContentDigest] = None,
) -> str:
    """Write the disk inside ``src`` (xz, gzip, zstd, bzip2, tar, or a compressed tar) to
    ``dst`` as a new sparse file, and return the payload's format (``"raw"``, or a disk format
    such as ``"qcow2"`` that still needs converting).

    ``src`` may be a :class:`~pyimagecache.sourcefile.GrowingFile`: the stream is unpacked as
    the download delivers it. ``dst`` is a scratch path: the caller publishes it (or converts
    it) and removes it on error. ``rule`` picks the tar member (default :data:`DISK_MEMBER`);
    given one, ``src`` must be a tar archive, plain or compressed.

    ``digest`` receives the unpacked file's content as it is written (no second read), sized
    at the end; it is meant for a raw payload: once the payload's head shows a disk format, it
    is fed no more, so when ``unpack`` returns anything but ``"raw"`` the caller takes the
    digest of the converted raw instead and ignores this one.

    >>> unpack(Path("disk.tar.xz"), Path(".disk.raw.tmp-1"))  # doctest: +SKIP
    'raw'
    """
    source = as_source(src)
    try:
        fmt = formats.detect(source.pread(formats.SNIFF_SIZE, 0))
        name = source.path.name
        if fmt not in formats.CONTAINERS:
            raise ContainerError(f"{name}: {fmt} is not a compressed file or tar archive")
        tar_only = rule is not None
        total = source.size
        throttle = Throttle(progress)
        with open(dst, "w+b") as out:
            stream = cast("IO[bytes]", SourceStream(source))
            file_reader = _Reader(stream, lambda done: throttle(done, total))
            output = _Output(out.fileno(), digest)
            unpacked = False
            try:
                if fmt == formats.TAR:
                    payload = _from_tar(file_reader, output, name, rule or DISK_MEMBER)
                else:
                    payload = _from_compressed(
                        fmt, file_reader, output, name, rule or DISK_MEMBER, tar_only
                    )
                unpacked = True
            except _ReadFailure as exc:
                where = f"after {file_reader.count} bytes of input"
                raise ContainerError(
                    f"{name}: {fmt} data is corrupt or truncated ({where}): "
                    f"{type(exc.cause).__name__}: {exc.cause}"
                ) from exc.cause
            finally:
                output.close(raising=unpacked)  # the digest has every byte; or, failing: stop
            out.flush()
            if digest is not None and payload == formats.RAW:
                digest.set_size(os.fstat(out.fileno()).st_size)
        if fmt == formats.ZSTD:
            # The zstandard stream reader returns a short result for a cut-off last frame,
            # silently: walk the frame headers to tell.
            _check_zstd_frames(source)
    finally:
        if source is not src:
            source.close()
    throttle(total, total, final=True)
    return payload


def _from_compressed(
    fmt: str, file_reader: _Reader, out: _Output, name: str, rule: MemberRule, tar_only: bool
) -> str:
    with _open_decoder(fmt, file_reader) as decoded:  # type: ignore[arg-type]
        stream = _Reader(decoded)
        head = _read_exact(stream, formats.SNIFF_SIZE)
        inner = formats.detect(head)
        if inner == formats.TAR:
            payload = _from_tar(_Prefixed(head, stream), out, name, rule)
            # Read the rest so that a truncated or corrupt stream (and xz's CRC) is noticed
            # even though the tar end marker came first.
            if _copy_to_nowhere(stream, MAX_OUTPUT) >= MAX_OUTPUT:
                raise ContainerError(f"{name}: endless data after the tar archive")
            return payload
        if tar_only:
            raise ContainerError(f"{name}: the {fmt} data holds {inner}, not a tar archive")
        _check_payload(inner, name, f"inside {fmt}", head)
        out.payload_is(inner)
        size = _copy(_Prefixed(head, stream), out, 0, MAX_OUTPUT)
        if stream.read(1):
            raise ContainerError(
                f"{name}: decompressed image exceeds {MAX_OUTPUT} bytes; refusing it"
            )
        os.ftruncate(out.fd, size)
        inner = _with_trailer(out.fd, head, size)
        _check_payload(inner, name, f"inside {fmt}", head)
        return inner


def _copy_to_nowhere(stream: _Reader, limit: int) -> int:
    drained = 0
    while drained < limit:
        chunk = stream.read(STREAM_BYTES)
        if not chunk:
            break
        drained += len(chunk)
    return drained


def _with_trailer(fd: int, head: bytes, size: int) -> str:
    """The payload's format once its end is known: a fixed VHD is raw-looking data followed by
    a footer, so the head alone cannot tell."""
    tail = os.pread(fd, formats.TAIL_SIZE, size - formats.TAIL_SIZE) if size >= 512 else b""
    return formats.detect(head, tail)


def _check_payload(inner: str, name: str, where: str, head: bytes) -> None:
    if inner in formats.CONTAINERS:
        raise UnsupportedImageError(
            f"{name}: the image {where} is {inner}-compressed again; nested containers "
            "are not supported"
        )
    if inner not in PAYLOADS:
        raise UnsupportedFormatError(f"{name}: the image {where}", inner, PAYLOADS)
    formats.check_self_contained(inner, head, f"{name}: the image {where}")


def _copy(stream: object, out: _Output, start: int, end: int) -> int:
    """Copy ``stream`` into ``out`` sparsely from offset ``start`` up to at most ``end``;
    return the offset reached."""
    read = stream.read  # type: ignore[attr-defined]
    offset = start
    while offset < end:
        chunk = read(min(STREAM_BYTES, end - offset))
        if not chunk:
            break
        out.write(offset, chunk)
        offset += len(chunk)
    return offset


def _member_base(member: tarfile.TarInfo) -> str:
    return member.name.rstrip("/").rpartition("/")[2]


def _from_tar(stream: object, out: _Output, name: str, rule: MemberRule) -> str:
    """Unpack the one disk of a tar: with the default rule, the disk an OVF descriptor names
    first (an OVA, a VirtualBox Vagrant box), else the only member that looks like a disk
    image (a libvirt Vagrant box's box.img, a plain tar); with another rule, the one member it
    accepts. Members are only ever streamed into ``out``."""
    chosen: Optional[tarfile.TarInfo] = None
    wanted: Optional[str] = None  # the file the OVF descriptor names, once it was read
    payload = formats.RAW
    seen: List[str] = []
    try:
        # Streaming mode: members are visited in order and never seeked back to.
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                seen.append(member.name)
                _check_member(member, name)
                ovf = member.isreg() and _member_base(member).lower().endswith(".ovf")
                if rule is DISK_MEMBER and ovf and chosen is None:
                    wanted = _ovf_choice(tar, member, name)
                    continue
                if wanted is not None:
                    if not member.isreg() or _member_base(member) != wanted:
                        continue  # another file of the package (a manifest, a second disk)
                elif not rule.accept(member):
                    continue
                if chosen is not None:
                    raise ContainerError(
                        f"{name}: tar archive holds more than one disk image "
                        f"({chosen.name!r} and {member.name!r}); expected exactly one"
                    )
                chosen = member
                payload = _unpack_member(tar, member, out, name)
    except tarfile.TarError as exc:
        raise ContainerError(f"{name}: corrupt tar archive: {exc}") from exc
    if chosen is None:
        listed = ", ".join(repr(n) for n in seen[:8]) + (", ..." if len(seen) > 8 else "")
        if wanted is not None:
            raise ContainerError(
                f"{name}: the OVF descriptor names disk file {wanted!r}, which the archive does "
                f"not hold (or holds before the descriptor); members: {listed}"
            )
        raise ContainerError(
            f"{name}: tar archive holds no disk image ({rule.wanted}); members: {listed or 'none'}"
        )
    return payload


def _check_member(member: tarfile.TarInfo, name: str) -> None:
    """Refuse an archive holding a link, a device or a path that leaves it, whichever member
    it is: such an archive is not a disk package, and an extractor (ours never extracts, but a
    user might) would write or read outside it."""
    what = None
    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        what = f"is a {kind} link to {member.linkname!r}"
        reference = member.linkname
    elif member.isdev():
        what = "is a device or FIFO"
        reference = member.name
    else:
        parts = member.name.replace("\\", "/").split("/")
        if member.name.startswith(("/", "\\")) or ".." in parts:
            what = "has a path that leaves the archive"
            reference = member.name
    if what is not None:
        raise ExternalReferenceError(
            f"{name}: tar member {member.name!r} {what}; a disk package holds only regular "
            "files and directories inside it",
            reference=reference,
            source=name,
        )


def _ovf_choice(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> str:
    """The base name of the disk file the OVF descriptor ``member`` names (its only disk)."""
    from .ovf import MAX_DESCRIPTOR, disk_files

    body = tar.extractfile(member)
    if body is None or member.size > MAX_DESCRIPTOR:
        raise ContainerError(f"{name}: OVF descriptor {member.name!r} is unreadable or too large")
    disks = disk_files(body.read(MAX_DESCRIPTOR + 1), f"{name}: {member.name}")
    if not disks:
        raise ContainerError(f"{name}: OVF descriptor {member.name!r} lists no disk")
    if len(disks) > 1:
        raise UnsupportedFormatError(
            f"{name} (an OVF package with {len(disks)} disks: {', '.join(disks)})",
            "multi-disk OVF",
            formats.CONVERTIBLE,
        )
    href = disks[0]
    if "/" in href or "\\" in href or ":" in href or href in ("", ".", ".."):
        raise ExternalReferenceError(
            f"{name}: the OVF descriptor names disk file {href!r}, which is not a plain file "
            "name inside the package",
            reference=href,
            source=name,
        )
    return href


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, out: _Output, name: str) -> str:
    """Stream one tar member into ``out`` sparsely; its payload format."""
    where = f"{member.name!r} in the tar archive"
    if member.sparse:
        head = _sparse_member(tar, member, out, name)
    else:
        body = tar.extractfile(member)
        if body is None:  # pragma: no cover - isreg() members always have a body
            raise ContainerError(f"{name}: cannot read tar member {member.name!r}")
        head = body.read(formats.SNIFF_SIZE)
        _check_payload(formats.detect(head), name, where, head)
        out.payload_is(formats.detect(head))
        out.write(0, head)
        done = _copy(body, out, len(head), member.size)
        if done != member.size:
            raise ContainerError(
                f"{name}: tar member {member.name!r} is truncated: header says "
                f"{member.size} bytes, archive holds {done}"
            )
    os.ftruncate(out.fd, member.size)
    payload = _with_trailer(out.fd, head, member.size)
    _check_payload(payload, name, where, head)
    return payload


def _sparse_member(tar: tarfile.TarFile, member: tarfile.TarInfo, out: _Output, name: str) -> bytes:
    """A sparse member (GNU or PAX sparse, as ``tar --sparse`` writes disk images): only its
    data segments are read, straight from the archive, and written at their offsets; the
    holes are never generated (tarfile's reader would build them as zero bytes, and joins
    them quadratically). Returns the member's first SNIFF_SIZE bytes."""
    stream = tar.fileobj
    stream.seek(member.offset_data)  # forward only, as a stream allows
    head = bytearray(formats.SNIFF_SIZE)
    end = 0
    segments = cast("List[Tuple[int, int]]", list(member.sparse or ()))
    for offset, size in segments:
        if size == 0:
            continue  # GNU tar writes an empty entry for a member that ends in a hole
        if offset < end or offset + size > member.size:
            raise ContainerError(
                f"{name}: tar member {member.name!r} has a sparse map entry ({offset}, {size}) "
                f"out of order or past its size {member.size}"
            )
        end = offset + size
        pos = offset
        while pos < end:
            chunk = stream.read(min(STREAM_BYTES, end - pos))
            if not chunk:
                raise ContainerError(
                    f"{name}: tar member {member.name!r} is truncated: its data ends at "
                    f"{pos} of the segment ({offset}, {size})"
                )
            if pos < formats.SNIFF_SIZE:
                piece = chunk[: formats.SNIFF_SIZE - pos]
                head[pos : pos + len(piece)] = piece
            out.write(pos, chunk)
            pos += len(chunk)
    return bytes(head)


_ZSTD_MAGIC = 0xFD2FB528


def _check_zstd_frames(source: SourceFile) -> None:
    """Walk the frame and block headers of a zstd file (no decoding) and raise if the last
    frame is cut short: the ``zstandard`` stream reader returns a short result then, silently."""
    size = source.size
    name = source.path.name

    def take(n: int, what: str, at: int) -> bytes:
        data = source.pread(n, at) if at + n <= size else b""
        if len(data) != n:
            raise ContainerError(
                f"{name}: zstd data is truncated: {what} at offset {at} needs {n} "
                f"bytes, the file ends at {size}"
            )
        return data

    pos = 0
    while pos < size:
        magic = int.from_bytes(take(4, "frame magic", pos), "little")
        if 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
            length = int.from_bytes(take(4, "skippable frame size", pos + 4), "little")
            pos += 8 + length
            if pos > size:
                take(size + 1, "skippable frame", pos - length)
            continue
        if magic != _ZSTD_MAGIC:
            raise ContainerError(
                f"{name}: zstd data is corrupt: expected a frame magic at offset "
                f"{pos}, found {magic:#010x}"
            )
        fhd = take(1, "frame header", pos + 4)[0]
        single = fhd & 0x20
        fcs = (0, 2, 4, 8)[fhd >> 6] or (1 if single else 0)
        header = 1 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
        pos += 4 + header
        while True:
            raw_header = take(3, "block header", pos)
            block = int.from_bytes(raw_header, "little")
            kind = (block >> 1) & 3
            if kind == 3:
                raise ContainerError(
                    f"{name}: zstd data is corrupt: reserved block type at offset {pos}"
                )
            pos += 3 + (1 if kind == 1 else block >> 3)
            if pos > size:
                take(size + 1, "block", pos)
            if block & 1:
                break
        if fhd & 0x04:
            take(4, "frame checksum", pos)
            pos += 4
