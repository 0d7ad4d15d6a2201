"""Malformed VHDX images: each case damages one thing in a valid writer-made image and expects
a specific VhdxError subclass whose message names the field, table entry or offset at fault.
Every failing case also goes through the converter, which must leave neither the output nor a
temporary file; no case may raise another exception type or hang (SIGALRM).
"""

from __future__ import annotations

import re
import struct
import uuid
from pathlib import Path
from typing import Callable, List, Tuple, Type

import pytest
from malformed import no_hang  # noqa: F401 (autouse: every case fails rather than hangs)
from vhdxwriter import (
    PARTIALLY_PRESENT,
    LogEntry,
    VhdxWriter,
    bat_sector_with,
    refresh_checksums,
)

from pyimagecache.converter import convert
from pyimagecache.errors import VhdxCorruptError, VhdxError, VhdxUnsupportedError
from pyimagecache.vhdx import open_image

KiB = 1 << 10
MiB = 1 << 20
H1, H2, RT1, RT2 = 64 * KiB, 128 * KiB, 192 * KiB, 256 * KiB


def writer() -> VhdxWriter:
    w = VhdxWriter(4 * MiB + 4096, block_size=MiB)
    w.data(0, b"\x11" * MiB)
    w.data(2, b"\x22" * 4096)
    w.data(4, b"\x33" * 4096)
    return w


def built() -> Tuple[VhdxWriter, bytearray]:
    w = writer()
    return w, bytearray(w.build())


def both_headers(img: bytearray, fmt: str, at: int, value: object) -> None:
    for base in (H1, H2):
        struct.pack_into(fmt, img, base + at, value)
    refresh_checksums(img)


def both_region_tables(img: bytearray, fmt: str, at: int, *values: object) -> None:
    for base in (RT1, RT2):
        struct.pack_into(fmt, img, base + at, *values)
    refresh_checksums(img)


def region_entry(i: int) -> int:
    return 16 + 32 * i


def metadata_entry(w: VhdxWriter, i: int) -> int:
    return w.layout.metadata_offset + 32 + 32 * i


def item_offset(w: VhdxWriter, img: bytes, i: int) -> int:
    return w.layout.metadata_offset + struct.unpack_from("<I", img, metadata_entry(w, i) + 16)[0]


def bat_entry(w: VhdxWriter, img: bytearray, block: int, value: int) -> None:
    struct.pack_into("<Q", img, w.layout.bat_entry_offset(block), value)


# -- the cases -------------------------------------------------------------------------------


def bad_file_id() -> bytes:
    _, img = built()
    img[0:8] = b"vhdxfilf"
    return bytes(img)


def both_header_checksums() -> bytes:
    _, img = built()
    img[H1 + 100] ^= 1
    img[H2 + 100] ^= 1
    return bytes(img)


def equal_sequences_differing() -> bytes:
    w = writer()
    w.sequence_numbers = (7, 7)
    return w.build()  # the two headers carry different random write GUIDs


def newer_header_version_2() -> bytes:
    w = writer()
    w.sequence_numbers = (9, 8)
    img = bytearray(w.build())
    struct.pack_into("<H", img, H1 + 66, 2)
    refresh_checksums(img)
    return bytes(img)


def log_version_1() -> bytes:
    _, img = built()
    both_headers(img, "<H", 64, 1)
    return bytes(img)


def log_offset_unaligned() -> bytes:
    _, img = built()
    both_headers(img, "<Q", 72, MiB + 4096)
    return bytes(img)


def log_past_eof() -> bytes:
    _, img = built()
    both_headers(img, "<I", 68, 64 * MiB)
    return bytes(img)


def both_region_checksums() -> bytes:
    _, img = built()
    img[RT1 + 1000] ^= 1
    img[RT2 + 1000] ^= 1
    return bytes(img)


def region_count_too_big() -> bytes:
    _, img = built()
    both_region_tables(img, "<I", 8, 2048)
    return bytes(img)


def region_past_eof() -> bytes:
    w, img = built()
    both_region_tables(img, "<I", region_entry(1) + 24, 64 * MiB)  # the metadata region
    return bytes(img)


def region_overlap() -> bytes:
    w, img = built()
    both_region_tables(img, "<Q", region_entry(1) + 16, w.layout.bat_offset)
    return bytes(img)


def region_in_header_section() -> bytes:
    _, img = built()
    both_region_tables(img, "<Q", region_entry(0) + 16, 512 * KiB)
    return bytes(img)


def unknown_required_region() -> bytes:
    w = writer()
    w.extra_regions = [(uuid.uuid4().bytes_le, 16 * MiB, MiB, 1)]
    return w.build()


def no_bat_region() -> bytes:
    _, img = built()
    both_region_tables(img, "<16sQII", region_entry(0), uuid.uuid4().bytes_le, 3 * MiB, MiB, 0)
    return bytes(img)


def duplicate_metadata_region() -> bytes:
    w, img = built()
    metadata_guid = bytes(img[RT1 + region_entry(1) : RT1 + region_entry(1) + 16])
    both_region_tables(img, "<16s", region_entry(0), metadata_guid)
    return bytes(img)


def log_overlaps_region() -> bytes:
    w, img = built()
    both_headers(img, "<Q", 72, w.layout.metadata_offset)
    return bytes(img)


def metadata_signature() -> bytes:
    w, img = built()
    img[w.layout.metadata_offset] ^= 0x20
    return bytes(img)


def metadata_count() -> bytes:
    w, img = built()
    struct.pack_into("<H", img, w.layout.metadata_offset + 10, 2048)
    return bytes(img)


def unknown_required_item() -> bytes:
    w = writer()
    w.extra_items = [(uuid.uuid4().bytes_le, b"x" * 16, 4)]
    return w.build()


def missing_item() -> bytes:
    w, img = built()
    struct.pack_into("<16s", img, metadata_entry(w, 2), uuid.uuid4().bytes_le)  # Page 83 ...
    struct.pack_into("<I", img, metadata_entry(w, 2) + 24, 0)  # ... now an optional unknown
    return bytes(img)


def duplicate_item() -> bytes:
    w, img = built()
    img[metadata_entry(w, 4) : metadata_entry(w, 4) + 16] = img[
        metadata_entry(w, 3) : metadata_entry(w, 3) + 16
    ]
    return bytes(img)


def item_outside_region() -> bytes:
    w, img = built()
    struct.pack_into("<I", img, metadata_entry(w, 1) + 16, MiB - 4)
    return bytes(img)


def item_inside_table() -> bytes:
    w, img = built()
    struct.pack_into("<I", img, metadata_entry(w, 1) + 16, 100)
    return bytes(img)


def item_value(index: int, fmt: str, value: int) -> Callable[[], bytes]:
    def make() -> bytes:
        w, img = built()
        struct.pack_into(fmt, img, item_offset(w, img, index), value)
        return bytes(img)

    make.__name__ = f"item{index}_{value}"
    return make


def differencing_with_path() -> bytes:
    w = writer()
    w.has_parent = True
    w.parent_locator = {"parent_linkage": "{0}", "relative_path": "..\\base.vhdx"}
    return w.build()


def differencing_without_locator() -> bytes:
    w = writer()
    w.has_parent = True
    return w.build()


def bat_overlapping_blocks() -> bytes:
    w, img = built()
    bat_entry(w, img, 3, 6 | (w.layout.block_offsets[2] // MiB) << 20)
    return bytes(img)


def bat_into_metadata() -> bytes:
    w, img = built()
    bat_entry(w, img, 3, 6 | (w.layout.metadata_offset // MiB) << 20)
    return bytes(img)


def bat_into_header() -> bytes:
    w, img = built()
    bat_entry(w, img, 3, 6)
    return bytes(img)


def bat_past_eof() -> bytes:
    w, img = built()
    bat_entry(w, img, 3, 6 | (len(img) // MiB) << 20)
    return bytes(img)


def bat_reserved_bits() -> bytes:
    w, img = built()
    bat_entry(w, img, 1, 2 | 1 << 12)
    return bytes(img)


def bat_unknown_state() -> bytes:
    w, img = built()
    bat_entry(w, img, 1, 4)
    return bytes(img)


def bat_partially_present() -> bytes:
    w = writer()
    w.state(3, PARTIALLY_PRESENT)
    return w.build()


def bat_region_too_small() -> bytes:
    w = VhdxWriter(200 * 1024 * MiB, block_size=MiB)  # 204800 entries: more than 1 MiB of BAT
    img = bytearray(w.build())
    both_region_tables(img, "<I", region_entry(0) + 24, MiB)
    return bytes(img)


def truncated(at: Callable[[VhdxWriter], int]) -> Callable[[], bytes]:
    def make() -> bytes:
        w, img = built()
        return bytes(img[: at(w)])

    return make


def log_flushed_past_eof() -> bytes:
    w = writer()
    base = w.build()
    w.log_guid = uuid.uuid4().bytes_le
    sector, data = bat_sector_with(base, w.layout, 1, 0)
    w.log_entries = [LogEntry(3, [(sector, data)], flushed_file_offset=len(base) + MiB)]
    return w.build()


def log_too_big_to_replay() -> bytes:
    w = writer()
    w.log_length = 17 * MiB
    w.log_guid = uuid.uuid4().bytes_le
    return w.build()


def log_of_overlapping_headers() -> bytes:
    """Every log sector starts an entry as long as the log whose checksum fails: the CRC work
    stops at its budget instead of checksumming the log once per sector."""
    w = writer()
    w.log_length = 2 * MiB
    w.log_guid = uuid.uuid4().bytes_le
    img = bytearray(w.build())
    for pos in range(0, 2 * MiB, 4096):
        struct.pack_into(
            "<4sIIIQII16sQQ", img, MiB + pos, b"loge", 1, 2 * MiB, 0, 5, 0, 0, w.log_guid, 0, 0
        )
    return bytes(img)


Case = Tuple[str, Callable[[], bytes], Type[VhdxError], str]

CASES: List[Case] = [
    ("file-id", bad_file_id, VhdxCorruptError, r"file type identifier at offset 0"),
    ("both-header-crcs", both_header_checksums, VhdxCorruptError,
     r"no valid header: header 1 at 0x10000 has checksum .*header 2 at 0x20000"),
    ("equal-sequences", equal_sequences_differing, VhdxCorruptError,
     r"both have sequence number 7 but differ"),
    ("header-version", newer_header_version_2, VhdxUnsupportedError,
     r"header 1 at 0x10000: version 2"),
    ("log-version", log_version_1, VhdxUnsupportedError, r"log version 1"),
    ("log-offset", log_offset_unaligned, VhdxCorruptError, r"LogOffset 0x101000"),
    ("log-past-eof", log_past_eof, VhdxCorruptError, r"the log at 0x100000 .*past the end"),
    ("both-region-crcs", both_region_checksums, VhdxCorruptError,
     r"region table at 0x30000 has checksum"),
    ("region-count", region_count_too_big, VhdxCorruptError, r"EntryCount 2048 exceeds 2047"),
    ("region-past-eof", region_past_eof, VhdxCorruptError,
     r"region table entry 1 \(at 0x30030.*runs past the end of the file"),
    ("region-overlap", region_overlap, VhdxCorruptError,
     r"region table entry 1 .*overlaps region table entry 0"),
    ("region-in-headers", region_in_header_section, VhdxCorruptError,
     r"region table entry 0 .*inside the 1 MiB header section"),
    ("unknown-required-region", unknown_required_region, VhdxUnsupportedError,
     r"region table entry 2 .*unknown region marked required"),
    ("no-bat-region", no_bat_region, VhdxCorruptError, r"has no BAT region"),
    ("two-metadata-regions", duplicate_metadata_region, VhdxCorruptError,
     r"entry 1 .*a second metadata region \(entry 0"),
    ("log-overlaps-region", log_overlaps_region, VhdxCorruptError,
     r"region table entry 1 at 0x200000\+1048576 overlaps the log"),
    ("metadata-signature", metadata_signature, VhdxCorruptError,
     r"table at 0x200000 has signature b'Metadata'"),
    ("metadata-count", metadata_count, VhdxCorruptError, r"EntryCount 2048 exceeds 2047"),
    ("unknown-required-item", unknown_required_item, VhdxUnsupportedError,
     r"entry 5 \(.*unknown item marked required"),
    ("missing-item", missing_item, VhdxCorruptError, r"lacks required items: Page 83 Data"),
    ("duplicate-item", duplicate_item, VhdxCorruptError,
     r"entry 4 \(Logical Sector Size.*a second Logical Sector Size item \(entry 3\)"),
    ("item-outside-region", item_outside_region, VhdxCorruptError,
     r"entry 1 \(Virtual Disk Size, at 0x200040\): item at region offset 0xffffc"),
    ("item-inside-table", item_inside_table, VhdxCorruptError,
     r"entry 1 \(Virtual Disk Size.*region offset 0x64"),
    ("block-size-512k", item_value(0, "<I", 512 * KiB), VhdxCorruptError, r"BlockSize 524288"),
    ("block-size-3m", item_value(0, "<I", 3 * MiB), VhdxCorruptError, r"BlockSize 3145728"),
    ("block-size-512m", item_value(0, "<I", 512 * MiB), VhdxCorruptError, r"BlockSize 536870912"),
    ("virtual-size-odd", item_value(1, "<Q", 4 * MiB + 100), VhdxCorruptError,
     r"Virtual Disk Size 4194404 is not a multiple of the logical sector size 512"),
    ("virtual-size-huge", item_value(1, "<Q", 1 << 50), VhdxCorruptError, r"exceeds 64 TiB"),
    ("logical-sector", item_value(3, "<I", 1024), VhdxCorruptError, r"Logical Sector Size 1024"),
    ("physical-sector", item_value(4, "<I", 520), VhdxCorruptError, r"Physical Sector Size 520"),
    ("differencing", differencing_with_path, VhdxUnsupportedError,
     r"differencing VHDX disk \(its parent: '..\\\\base.vhdx'\)"),
    ("has-parent-no-locator", differencing_without_locator, VhdxCorruptError,
     r"HasParent is set but there is no Parent Locator"),
    ("bat-overlap", bat_overlapping_blocks, VhdxCorruptError,
     r"BAT entry 3 \(payload block 3, at 0x300018\): .*overlaps another payload block"),
    ("bat-into-metadata", bat_into_metadata, VhdxCorruptError,
     r"BAT entry 3 .*overlaps the metadata region"),
    ("bat-into-headers", bat_into_header, VhdxCorruptError,
     r"BAT entry 3 .*block at 0x0 .*overlaps the header section"),
    ("bat-past-eof", bat_past_eof, VhdxCorruptError,
     r"BAT entry 3 .*runs past the end of the file"),
    ("bat-reserved", bat_reserved_bits, VhdxCorruptError,
     r"BAT entry 1 .*reserved bits 0x1000 are set"),
    ("bat-state-4", bat_unknown_state, VhdxCorruptError, r"BAT entry 1 .*state 4 is not"),
    ("bat-partial", bat_partially_present, VhdxCorruptError,
     r"BAT entry 3 .*PARTIALLY_PRESENT.*no parent"),
    ("bat-region-small", bat_region_too_small, VhdxCorruptError,
     r"BAT: the region at 0x300000 is 1048576 bytes, too small for the 204849 entries"),
    ("truncated-in-file-id", truncated(lambda w: 4096), VhdxCorruptError, r"no valid header"),
    ("truncated-in-header-2", truncated(lambda w: H2 + 100), VhdxCorruptError,
     r"log at 0x100000 .*past the end"),
    ("truncated-in-log", truncated(lambda w: MiB + 4096), VhdxCorruptError, r"past the end"),
    ("truncated-in-bat", truncated(lambda w: w.layout.bat_offset + 4096), VhdxCorruptError,
     r"past the end"),
    ("truncated-in-data", truncated(lambda w: w.layout.block_offsets[4] - MiB // 2),
     VhdxCorruptError, r"past the end"),
    ("log-flushed-past-eof", log_flushed_past_eof, VhdxCorruptError,
     r"log entry 3 .*FlushedFileOffset .*truncated"),
    ("log-crc-budget", log_of_overlapping_headers, VhdxCorruptError,
     r"log at 0x100000: too many overlapping candidate entries"),
    ("log-too-big", log_too_big_to_replay, VhdxUnsupportedError,
     r"unreplayed entries .*qemu-img check -r all"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "error", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_malformed(
    tmp_path: Path, name: str, make: Callable[[], bytes], error: Type[VhdxError], pattern: str
) -> None:
    src = tmp_path / "bad.vhdx"
    src.write_bytes(make())
    with pytest.raises(error) as info, open_image(src) as img:
        img.read(0, img.virtual_size)
    assert re.search(pattern, str(info.value)), str(info.value)
    dst = tmp_path / "out" / "disk.raw"
    dst.parent.mkdir()
    if name == "file-id":  # without its magic the file is raw data, as qemu-img sees it too
        assert convert(src, dst) == dst
        return
    with pytest.raises(error):
        convert(src, dst)
    assert list(dst.parent.iterdir()) == []


# -- damage the reader recovers from ----------------------------------------------------------


def opens_and_reads(tmp_path: Path, data: bytes, w: VhdxWriter) -> None:
    src = tmp_path / "ok.vhdx"
    src.write_bytes(data)
    with open_image(src) as img:
        assert img.read(0, img.virtual_size) == w.expected()


@pytest.mark.parametrize("damaged", [H1, H2])
def test_one_bad_header_checksum_uses_the_other(tmp_path: Path, damaged: int) -> None:
    w, img = built()
    img[damaged + 2000] ^= 1
    opens_and_reads(tmp_path, bytes(img), w)


def test_higher_sequence_number_is_current(tmp_path: Path) -> None:
    w = writer()
    w.sequence_numbers = (5, 900)
    img = bytearray(w.build())
    # header 1 (older) names an impossible log; only the current header 2 is used
    struct.pack_into("<Q", img, H1 + 72, 3 * MiB + 4096)
    refresh_checksums(img)
    opens_and_reads(tmp_path, bytes(img), w)
    struct.pack_into("<Q", img, H1 + 8, 901)
    refresh_checksums(img)
    src = tmp_path / "newer.vhdx"
    src.write_bytes(bytes(img))
    with pytest.raises(VhdxCorruptError, match=r"header 1 at 0x10000: LogOffset 0x301000"):
        open_image(src)


def test_bad_first_region_table_uses_the_copy(tmp_path: Path) -> None:
    w, img = built()
    img[RT1 + 5000] ^= 1
    opens_and_reads(tmp_path, bytes(img), w)


def test_unknown_optional_region_and_item_are_ignored(tmp_path: Path) -> None:
    w = writer()
    w.extra_regions = [(uuid.uuid4().bytes_le, 16 * MiB, MiB, 0)]
    w.extra_items = [(uuid.uuid4().bytes_le, b"user data", 1)]
    opens_and_reads(tmp_path, w.build(), w)


def test_log_entry_with_bad_checksum_is_not_replayed(tmp_path: Path) -> None:
    w = writer()
    base = w.build()
    w.log_guid = uuid.uuid4().bytes_le
    sector, data = bat_sector_with(base, w.layout, 0, 0)  # would unmap block 0
    w.log_entries = [LogEntry(3, [(sector, data)], corrupt_checksum=True)]
    opens_and_reads(tmp_path, w.build(), w)


def test_log_entry_of_another_log_guid_is_not_replayed(tmp_path: Path) -> None:
    w = writer()
    base = w.build()
    w.log_guid = uuid.uuid4().bytes_le
    sector, data = bat_sector_with(base, w.layout, 0, 0)
    w.log_entries = [LogEntry(3, [(sector, data)], guid=uuid.uuid4().bytes_le)]
    opens_and_reads(tmp_path, w.build(), w)


def test_truncated_last_block_reads_zeros_past_the_end(tmp_path: Path) -> None:
    """qemu allows the last block to lie partly past the end of the file."""
    w = VhdxWriter(3 * MiB + 8192, block_size=MiB)
    w.data(3, b"\x44" * 8192)
    data = w.build()[: w.layout.block_offsets[3] + 8192]
    opens_and_reads(tmp_path, data, w)
