"""The VHDX metadata log, replayed in memory ([MS-VHDX] 2.3; qemu's block/vhdx-log.c).

A writer updates metadata (the BAT, metadata items) by first appending a log entry that holds
the new sectors, then writing them in place. A header with a non-zero LogGuid says the log
may hold entries that never reached their place, so they must be replayed before anything
else is read. qemu replays them into the file (``qemu-img check -r all``); this reader never
writes: it builds an :class:`Overlay` of the sectors the active sequence writes, keyed by file
offset, and every metadata and data read consults it.

The log is a circular buffer of 4 KiB sectors. An entry is a header sector (``loge``) with its
descriptors (``desc``: one 4 KiB data sector, ``zero``: a run of zeros), then the data sectors
(``data``), CRC-32C over the whole entry. Valid entries whose sequence numbers increase by one
and follow each other in the buffer form a sequence; the active sequence is the one whose
last entry (the head) has the highest sequence number, replayed from the entry its Tail field
points to (the whole sequence when Tail points elsewhere, as qemu replays it).
"""

from __future__ import annotations

import bisect
import struct
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import VhdxCorruptError, VhdxUnsupportedError
from .crc32c import checksum_with_field_zeroed
from .header import MAX_OFFSET, Header, MiB, Reader

SECTOR = 4096
ENTRY_SIGNATURE = b"loge"
DATA_DESCRIPTOR = b"desc"
ZERO_DESCRIPTOR = b"zero"
DATA_SIGNATURE = b"data"
#: The largest non-empty log replayed in memory (Hyper-V and qemu make 1 MiB logs). With the
#: checksum budget below, a hostile log costs at most ~17 MiB of CRC-32C (~2 s in pure Python).
MAX_LOG_LENGTH = 8 * MiB
#: Descriptors replayed at most, which bounds the overlay's size and the time to build it.
MAX_DESCRIPTORS = 65536

_ENTRY_HEADER = struct.Struct("<4sIIIQII16sQQ")
_DESCRIPTOR = struct.Struct("<4s4s8sQQ")

Buffer = Union[bytearray, memoryview]


class Overlay:
    """Non-overlapping file ranges that read as replayed sectors (bytes) or zeros (None)."""

    def __init__(self) -> None:
        self._starts: List[int] = []
        self._ends: List[int] = []
        self._data: List[Optional[bytes]] = []

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __len__(self) -> int:
        return len(self._starts)

    @property
    def end(self) -> int:
        """The end of the furthest range (0 when empty)."""
        return self._ends[-1] if self._ends else 0

    def write(self, start: int, length: int, data: Optional[bytes]) -> None:
        """Later writes win: [start, start + length) now reads as ``data`` (None: zeros)."""
        end = start + length
        lo = bisect.bisect_right(self._ends, start)
        hi = bisect.bisect_left(self._starts, end)
        pieces: List[Tuple[int, int, Optional[bytes]]] = []
        for i in range(lo, hi):  # keep what sticks out of the new range on either side
            s, e, d = self._starts[i], self._ends[i], self._data[i]
            if s < start:
                pieces.append((s, start, d[: start - s] if d is not None else None))
            if e > end:
                pieces.append((end, e, d[end - s :] if d is not None else None))
        pieces.append((start, end, data))
        pieces.sort(key=lambda p: p[0])
        self._starts[lo:hi] = [p[0] for p in pieces]
        self._ends[lo:hi] = [p[1] for p in pieces]
        self._data[lo:hi] = [p[2] for p in pieces]

    def touches(self, offset: int, length: int) -> bool:
        i = bisect.bisect_right(self._ends, offset)
        return i < len(self._starts) and self._starts[i] < offset + length

    def patch(self, view: Buffer, offset: int, length: int) -> None:
        """Lay the replayed ranges over ``view[:length]``, which holds file bytes from
        ``offset``."""
        end = offset + length
        i = bisect.bisect_right(self._ends, offset)
        while i < len(self._starts) and self._starts[i] < end:
            s, e, d = self._starts[i], self._ends[i], self._data[i]
            lo, hi = max(s, offset), min(e, end)
            if d is None:
                view[lo - offset : hi - offset] = bytes(hi - lo)
            else:
                view[lo - offset : hi - offset] = d[lo - s : hi - s]
            i += 1


class _Descriptor(NamedTuple):
    zero: bool
    file_offset: int
    length: int  # bytes written
    data: bytes  # the data sector's bytes (empty for a zero descriptor)


class _Entry(NamedTuple):
    position: int
    length: int
    tail: int
    sequence: int
    flushed_file_offset: int
    last_file_offset: int
    descriptors: Tuple[_Descriptor, ...]


class _Scanner:
    """Finds the valid entries of a log held in memory; the CRC-32C work is bounded."""

    def __init__(self, log: bytes, header: Header) -> None:
        self.log = log
        self.length = len(log)
        self.guid = header.log_guid
        self.base = header.log_offset
        # Valid logs checksum each byte about once, stale entries overlapping live ones at most
        # once more; hostile entries that pass the cheap checks stop at this budget.
        self.crc_budget = 2 * self.length + MiB

    def span(self, pos: int, size: int) -> bytes:
        """``size`` log bytes from ``pos``, wrapping around the circular buffer."""
        end = pos + size
        if end <= self.length:
            return self.log[pos:end]
        return self.log[pos:] + self.log[: end - self.length]

    def entry(self, pos: int) -> Optional[_Entry]:
        log = self.log
        if log[pos : pos + 4] != ENTRY_SIGNATURE:
            return None
        (_, checksum, length, tail, seq, count, _, guid, flushed, last) = _ENTRY_HEADER.unpack_from(
            log, pos
        )
        desc_sectors = (count + 2 + 127) // 128  # the header takes two descriptor slots
        if (
            guid != self.guid
            or not seq
            or length % SECTOR
            or not desc_sectors * SECTOR <= length <= self.length
            or tail % SECTOR
            or tail >= self.length
        ):
            return None
        head = self.span(pos, desc_sectors * SECTOR)
        descriptors: List[_Descriptor] = []
        data_index = desc_sectors
        for i in range(count):
            sig, trailing, leading, file_offset, desc_seq = _DESCRIPTOR.unpack_from(
                head, 64 + 32 * i
            )
            if desc_seq != seq or file_offset % SECTOR:
                return None
            if sig == ZERO_DESCRIPTOR:
                zero_length = struct.unpack("<Q", leading)[0]
                if zero_length % SECTOR or file_offset + zero_length > MAX_OFFSET:
                    return None
                descriptors.append(_Descriptor(True, file_offset, zero_length, b""))
            elif sig == DATA_DESCRIPTOR:
                if (data_index + 1) * SECTOR > length or file_offset + SECTOR > MAX_OFFSET:
                    return None
                sector = self.span((pos + data_index * SECTOR) % self.length, SECTOR)
                data_seq = struct.unpack_from("<I", sector, 4)[0] << 32
                data_seq |= struct.unpack_from("<I", sector, 4092)[0]
                if sector[:4] != DATA_SIGNATURE or data_seq != seq:
                    return None
                data = leading + sector[8:4092] + trailing
                descriptors.append(_Descriptor(False, file_offset, SECTOR, data))
                data_index += 1
            else:
                return None
        self.crc_budget -= length
        if self.crc_budget < 0:
            raise VhdxCorruptError(
                f"vhdx log at {self.base:#x}: too many overlapping candidate entries to check"
            )
        body = self.span(pos, length)
        if checksum_with_field_zeroed(body, 4) != checksum:
            return None
        return _Entry(pos, length, tail, seq, flushed, last, tuple(descriptors))


def _active_sequence(entries: Dict[int, _Entry], length: int) -> Sequence[_Entry]:
    """The entries to replay, in order (empty when the log holds no valid sequence)."""

    def successor(entry: _Entry) -> Optional[_Entry]:
        nxt = entries.get((entry.position + entry.length) % length)
        return nxt if nxt is not None and nxt.sequence == entry.sequence + 1 else None

    followers = set()
    for entry in entries.values():
        nxt = successor(entry)
        if nxt is not None:
            followers.add(nxt.position)
    best: List[_Entry] = []
    for start in entries.values():
        if start.position in followers:
            continue
        chain = [start]
        # Sequence numbers strictly increase along a chain, so it ends within len(entries).
        while len(chain) <= len(entries):
            nxt = successor(chain[-1])
            if nxt is None:
                break
            chain.append(nxt)
        head = chain[-1]
        for i, entry in enumerate(chain):
            if entry.position == head.tail:
                chain = chain[i:]
                break
        if not best or head.sequence > best[-1].sequence:
            best = chain
    return best


def replay(read: Reader, header: Header, file_size: int) -> Overlay:
    """The overlay of the log's active sequence ([MS-VHDX] 2.3.3); empty when the header's
    LogGuid is zero or the log holds no valid sequence, as in qemu's vhdx_parse_log."""
    overlay = Overlay()
    if not header.has_log or not header.log_length:
        return overlay
    where = f"vhdx log at {header.log_offset:#x}"
    if header.log_length > MAX_LOG_LENGTH:
        raise VhdxUnsupportedError(
            f"{where}: the log has unreplayed entries and is {header.log_length} bytes, more "
            f"than the {MAX_LOG_LENGTH} this reader replays in memory; open the image in "
            "Hyper-V or `qemu-img check -r all` it first"
        )
    log = read(header.log_length, header.log_offset)
    if len(log) < header.log_length:
        raise VhdxCorruptError(f"{where}: the log is truncated")
    scanner = _Scanner(log, header)
    entries: Dict[int, _Entry] = {}
    for pos in range(0, header.log_length, SECTOR):
        entry = scanner.entry(pos)
        if entry is not None:
            entries[pos] = entry
    sequence = _active_sequence(entries, header.log_length)
    count = sum(len(e.descriptors) for e in sequence)
    if count > MAX_DESCRIPTORS:
        raise VhdxUnsupportedError(
            f"{where}: the active log sequence has {count} descriptors, more than the "
            f"{MAX_DESCRIPTORS} this reader replays in memory"
        )
    for entry in sequence:
        if entry.flushed_file_offset > file_size:
            raise VhdxCorruptError(
                f"{where}: log entry {entry.sequence} (at log offset {entry.position:#x}) has "
                f"FlushedFileOffset {entry.flushed_file_offset}, past the end of the file "
                f"({file_size} bytes): the image was truncated"
            )
        for desc in entry.descriptors:
            if desc.length:
                overlay.write(desc.file_offset, desc.length, None if desc.zero else desc.data)
    return overlay


class OverlayReader:
    """File reads with the replayed log laid over them."""

    def __init__(self, read: Reader, overlay: Overlay) -> None:
        self._read = read
        self.overlay = overlay

    def read(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (short at the end of the file, unless the log
        wrote past it)."""
        data = self._read(length, offset)
        if not self.overlay or not self.overlay.touches(offset, length):
            return data
        buf = bytearray(data)
        if len(buf) < length and self.overlay.end > offset + len(buf):
            buf += bytes(min(length, self.overlay.end - offset) - len(buf))
        self.overlay.patch(buf, offset, len(buf))
        return bytes(buf)


__all__ = ["MAX_LOG_LENGTH", "Overlay", "OverlayReader", "replay"]
