"""Decompressors, each bounded to the output size the caller expects (no decompression bombs).

Deflate uses zlib-ng when the ``fast`` extra is installed and the standard library otherwise
(``PYIMAGECACHE_INFLATE=zlib`` forces the standard library, for benchmarks and bug reports;
read through :mod:`pyimagecache.settings` when inflating first starts).
zstd uses ``compression.zstd`` on Python 3.14+, else the ``zstandard`` package (the ``zstd``
extra); without either, :class:`MissingExtraError` names the extra to install.
"""

from __future__ import annotations

import io
import threading
import zlib
from types import ModuleType
from typing import IO, Callable, Optional, Tuple, Type, Union, cast

from .errors import MissingExtraError

#: Compressed input: bytes, or a memoryview slice of a larger read (no copy).
Buffer = Union[bytes, bytearray, memoryview]


class DecompressError(Exception):
    """Internal: a codec rejected its input. Callers re-raise it with context (which cluster)."""


def _pick_zlib() -> Tuple[ModuleType, Tuple[Type[Exception], ...]]:
    from .environment import environ

    if environ("PYIMAGECACHE_INFLATE") == "zlib":
        return zlib, (zlib.error,)
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return zlib, (zlib.error,)
    # zlib-ng's stubs declare `error` as an instance; at run time it is the exception class.
    ng_error = cast("Type[Exception]", zlib_ng.error)
    return zlib_ng, (zlib.error, ng_error)


# Chosen on first use, not at import: the environment is read when inflating starts.
_inflater: Optional[Tuple[ModuleType, Tuple[Type[Exception], ...]]] = None


def inflater() -> Tuple[ModuleType, Tuple[Type[Exception], ...]]:
    """(the zlib module in use, the exceptions it raises)."""
    global _inflater
    if _inflater is None:
        _inflater = _pick_zlib()
    return _inflater


def __getattr__(name: str) -> str:
    if name == "INFLATE_BACKEND":  # which inflate is in use, for ``info`` and benchmarks
        return "zlib-ng" if inflater()[0] is not zlib else "zlib"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inflate_raw(data: Buffer, size: int) -> bytes:
    """Inflate raw deflate (window bits 12, as qemu writes qcow2 clusters) to exactly ``size``
    bytes; whatever follows the first ``size`` output bytes is ignored, as qemu does."""
    module, errors = _inflater or inflater()
    try:
        out: bytes = module.decompressobj(-12).decompress(data, size)
    except errors as exc:
        raise DecompressError(f"deflate: {exc}") from None
    if len(out) != size:
        raise DecompressError(f"deflate: produced {len(out)} of {size} bytes")
    return out


def inflate_zlib(data: Buffer, limit: int) -> bytes:
    """One zlib stream (with its zlib header, as VMDK grains are) to at most ``limit`` bytes;
    it must end within ``data`` and within ``limit`` output bytes, as qemu's ``uncompress``
    requires."""
    module, errors = _inflater or inflater()
    try:
        d = module.decompressobj()
        out: bytes = d.decompress(data, limit)
        # When the output filled the limit, only the stream's end (its checksum) may remain.
        if not d.eof and len(out) == limit and d.decompress(d.unconsumed_tail, 1):
            raise DecompressError(f"the stream holds more than {limit} bytes")
        if not d.eof:
            raise DecompressError("the stream is truncated")
    except errors as exc:
        raise DecompressError(f"zlib: {exc}") from None
    return out


def _zstd_cluster_decoder() -> Callable[[Buffer, int], bytes]:
    try:
        from compression import zstd as stdlib_zstd  # Python 3.14+
    except ImportError:
        stdlib_zstd = None
    if stdlib_zstd is not None:

        def decode_stdlib(data: Buffer, size: int) -> bytes:
            out = bytearray()
            rest = data
            # One decompressor per frame; a cluster may hold several frames.
            while len(out) < size and rest:
                d = stdlib_zstd.ZstdDecompressor()
                out += d.decompress(rest, size - len(out))
                if not d.eof:
                    if d.needs_input:
                        break
                    continue
                rest = d.unused_data
            return bytes(out)

        return decode_stdlib
    try:
        import zstandard
    except ImportError:
        raise MissingExtraError("zstd-compressed data", "zstd", "zstandard") from None

    # A ZstdDecompressor must not be shared between threads (the converter decodes in a pool).
    local = threading.local()

    def decode_zstandard(data: Buffer, size: int) -> bytes:
        dctx = getattr(local, "dctx", None)
        if dctx is None:
            dctx = local.dctx = zstandard.ZstdDecompressor()
        # qemu's frames declare their content size: when it is exactly one cluster, a one-shot
        # decode is bounded by it (zstd checks the size) and avoids the streaming overhead.
        if zstandard.frame_content_size(data) == size:
            out: bytes = dctx.decompress(data)
            return out
        reader = dctx.stream_reader(io.BytesIO(data), read_across_frames=True)
        parts = bytearray()
        while len(parts) < size:
            part = reader.read(size - len(parts))
            if not part:
                break
            parts += part
        return bytes(parts)

    return decode_zstandard


_zstd_decode: Optional[Callable[[Buffer, int], bytes]] = None


def zstd_available() -> bool:
    try:
        _zstd_cluster_decoder()
    except MissingExtraError:
        return False
    return True


def zstd_decompress(data: Buffer, size: int) -> bytes:
    """Decode one or more zstd frames until exactly ``size`` bytes are produced."""
    global _zstd_decode
    if _zstd_decode is None:
        _zstd_decode = _zstd_cluster_decoder()
    try:
        out = _zstd_decode(data, size)
    except MissingExtraError:
        raise
    except Exception as exc:  # both zstd bindings raise their own error classes
        raise DecompressError(f"zstd: {exc}") from None
    if len(out) != size:
        raise DecompressError(f"zstd: produced {len(out)} of {size} bytes")
    return out


def open_zstd_stream(fileobj: IO[bytes]) -> IO[bytes]:
    """A readable stream decoding every zstd frame of ``fileobj`` (for ``.zst`` disk images)."""
    try:
        from compression import zstd as stdlib_zstd  # Python 3.14+
    except ImportError:
        stdlib_zstd = None
    if stdlib_zstd is not None:
        stream: IO[bytes] = stdlib_zstd.ZstdFile(fileobj, "rb")
        return stream
    try:
        import zstandard
    except ImportError:
        raise MissingExtraError("a zstd-compressed image", "zstd", "zstandard") from None
    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True)
    return reader
