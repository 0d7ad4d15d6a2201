"""The harness shared by tests/test_vhd_malformed.py and tests/test_vdi_malformed.py: open a
malformed image with its reader and through the opener and converter, expect one error class
with a message naming the field, and check that nothing is left behind and nothing hangs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator, Type

import pytest
from conftest import time_limit

from pyimagecache.converter import convert
from pyimagecache.errors import ImageFormatError
from pyimagecache.sourcefile import SourceFile

TIME_LIMIT = 20


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    with time_limit(TIME_LIMIT, "the reader hangs"):
        yield


def expect_refused(
    tmp_path: Path,
    data: bytes,
    opener: Callable[[SourceFile], object],
    error: Type[ImageFormatError],
    pattern: str,
    *,
    suffix: str,
    detected: bool = True,
) -> None:
    """``opener`` refuses ``data`` with ``error`` matching ``pattern``; so does convert() when
    the file is ``detected`` as the format, leaving neither dst nor a temporary file."""
    src = tmp_path / f"bad{suffix}"
    src.write_bytes(data)
    source = SourceFile.open(src)
    try:
        with pytest.raises(ImageFormatError) as caught:
            opener(source)
    finally:
        source.close()
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert re.search(pattern, str(caught.value)), str(caught.value)
    if not detected:
        return
    dst = tmp_path / "out.raw"
    with pytest.raises(error, match=pattern):
        convert(src, dst)
    assert sorted(os.listdir(tmp_path)) == [src.name], os.listdir(tmp_path)
    dst.write_bytes(b"keep")  # an existing output is not touched either
    with pytest.raises(error):
        convert(src, dst)
    assert dst.read_bytes() == b"keep"
    dst.unlink()
