"""Bounded decoders: exact output size, trailing bytes ignored, bombs and garbage refused."""

from __future__ import annotations

import os
import zlib

import pytest

from pyimagecache import _codecs
from pyimagecache._codecs import DecompressError, inflate_raw, zstd_decompress


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


def test_inflate_exact_size_ignores_trailing_bytes() -> None:
    data = os.urandom(500) * 100
    assert inflate_raw(_deflate(data) + b"trailing sector junk", len(data)) == data


def test_inflate_is_bounded_against_bombs() -> None:
    bomb = _deflate(bytes(64 << 20))
    out = inflate_raw(bomb, 65536)  # only the first cluster is produced
    assert out == bytes(65536)


def test_inflate_short_and_garbage_streams_fail() -> None:
    with pytest.raises(DecompressError, match="produced 100 of 200"):
        inflate_raw(_deflate(b"a" * 100), 200)
    with pytest.raises(DecompressError, match="deflate"):
        inflate_raw(b"\xff" * 64, 512)


def test_zstd_multi_frame_and_bounds() -> None:
    zstandard = pytest.importorskip("zstandard")
    part1, part2 = os.urandom(3000), bytes(5000)
    frames = zstandard.ZstdCompressor().compress(part1) + zstandard.ZstdCompressor().compress(part2)
    assert zstd_decompress(frames + b"\0" * 10, 8000) == part1 + part2
    bomb = zstandard.ZstdCompressor().compress(bytes(64 << 20))
    assert zstd_decompress(bomb, 4096) == bytes(4096)
    with pytest.raises(DecompressError, match="zstd"):
        zstd_decompress(b"not zstd at all", 4096)
    with pytest.raises(DecompressError, match="produced 3000 of 9000"):
        zstd_decompress(zstandard.ZstdCompressor().compress(part1), 9000)


def test_inflate_backend_is_named() -> None:
    assert _codecs.INFLATE_BACKEND in ("zlib", "zlib-ng")


def test_missing_zstd_decoder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyimagecache.errors import MissingExtraError

    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)
    monkeypatch.setitem(__import__("sys").modules, "compression", None)
    monkeypatch.setattr(_codecs, "_zstd_decode", None)
    with pytest.raises(MissingExtraError, match=r"pyimagecache\[zstd\]"):
        zstd_decompress(b"\x28\xb5\x2f\xfd", 10)
    assert not _codecs.zstd_available()


def test_stdlib_inflate_can_be_forced() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "from pyimagecache import _codecs; print(_codecs.INFLATE_BACKEND)"],
        env={**os.environ, "PYIMAGECACHE_INFLATE": "zlib"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "zlib"
