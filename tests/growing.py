"""Convert an image while it is still being written, through a GrowingFile (as ensure() does
during a download): the reader must read metadata only when it needs it and wait for it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.opener import open_image
from pyimagecache.sourcefile import GrowingFile


def convert_while_growing(data: bytes, tmp_path: Path, suffix: str, chunk: int = 1 << 16) -> bytes:
    src, dst = tmp_path / f"growing{suffix}", tmp_path / "growing.raw"
    src.write_bytes(b"")
    grow = GrowingFile(src, len(data))

    def download() -> None:
        with open(src, "r+b") as f:
            for pos in range(0, len(data), chunk):
                f.seek(pos)
                f.write(data[pos : pos + chunk])
                f.flush()
                grow.grew(min(len(data), pos + chunk))
                time.sleep(0.001)
        grow.finish()

    thread = threading.Thread(target=download)
    thread.start()
    try:
        with open_image(grow) as img:
            convert_image(img, dst, ConvertOptions(workers=2, measure=False))
    finally:
        thread.join()
    return dst.read_bytes()
