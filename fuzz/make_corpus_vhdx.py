"""Write the VHDX seed corpus (fuzz/corpus/vhdx/*.vhdx) with tests/vhdxwriter.py.

A VHDX cannot be a few KiB: its header section alone is 1 MiB. The seeds are kept near that
floor (no log or a 1 MiB one, a 68 KiB metadata region, a 4 KiB BAT, and only a last block that
is partly in the file, which qemu accepts), mostly zeros, so git stores them in a few KiB.
Deterministic apart from the GUIDs the writer draws (regenerating changes them, not the shape).

    python fuzz/make_corpus_vhdx.py [OUTDIR]
"""

from __future__ import annotations

import random
import struct
import sys
import uuid
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from vhdxwriter import (  # noqa: E402
    FULLY_PRESENT,
    UNDEFINED,
    UNMAPPED,
    ZERO,
    LogEntry,
    VhdxWriter,
    bat_sector_with,
)

KiB, MiB = 1 << 10, 1 << 20


def compact(size: int, **kwargs: int) -> VhdxWriter:
    w = VhdxWriter(size, log_length=kwargs.pop("log_length", 0), **kwargs)
    w.metadata_length = 68 * KiB
    w.bat_length = 4 * KiB
    return w


def seeds() -> Dict[str, bytes]:
    rng = random.Random(7)
    out: Dict[str, bytes] = {}

    w = compact(3 * MiB + 4096)
    w.state(0, ZERO)
    w.state(1, UNMAPPED)
    w.state(2, UNDEFINED)
    w.data(3, rng.randbytes(4096))
    out["dynamic-states"] = w.build()[: 2 * MiB + 4096]

    w = compact(8192, fixed=True)
    w.data(0, b"fixed " * 1365)
    out["fixed-one-block"] = w.build()[: 2 * MiB + 8192]

    w = compact(2 * MiB + 8192, logical_sector_size=4096, physical_sector_size=4096)
    w.state(0, ZERO)
    w.data(2, rng.randbytes(8192))
    out["logical-4k"] = w.build()[: 2 * MiB + 8192]

    w = compact(MiB + 4096, block_size=2 * MiB)
    w.data(0, rng.randbytes(4096) + bytes(MiB))
    w.extra_regions = [(uuid.uuid4().bytes_le, 2 * MiB - 64 * KiB, 64 * KiB, 0)]
    w.extra_items = [(uuid.uuid4().bytes_le, b"user item", 1)]
    data = w.build()
    out["optional-extras"] = data[: w.layout.block_offsets[0] + MiB + 4096]

    w = compact(2 * MiB + 4096, log_length=MiB)
    w.data(2, rng.randbytes(4096))
    base = w.build()
    w.raw_entries[2] = 0  # on disk unmapped; the log maps it and zeroes part of it
    w.log_guid = uuid.uuid4().bytes_le
    entry = FULLY_PRESENT | (w.layout.block_offsets[2] // MiB) << 20
    sector, bat = bat_sector_with(base, w.layout, 2, entry)
    end = w.layout.block_offsets[2] + 8192  # where the seed is cut
    w.log_entries = [
        LogEntry(7, [(sector, bat)], flushed_file_offset=end, last_file_offset=end),
        LogEntry(8, [(w.layout.block_offsets[2], 4096)], flushed_file_offset=end),
    ]
    out["log-two-entries"] = w.build()[: w.layout.block_offsets[2] + 8192]

    w = compact(4096)
    w.has_parent = True
    w.parent_locator = {"parent_linkage": "{00000000-0000-0000-0000-000000000000}",
                        "relative_path": ".\\parent.vhdx"}  # fmt: skip
    out["differencing"] = w.build()[: 2 * MiB]
    assert struct.unpack_from("<8s", out["differencing"])[0] == b"vhdxfile"
    return out


def main() -> None:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus" / "vhdx"
    outdir.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (outdir / f"{name}.vhdx").write_bytes(data)


if __name__ == "__main__":
    main()
