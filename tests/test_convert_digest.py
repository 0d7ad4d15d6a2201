"""The content digest as the converter and the unpacker compute it, from the buffers they write,
equals ``file_content_digest`` of what they wrote (and the definition on the writer's expected
bytes): images of every format drawn at random by the test-side writers (qcow2 with deflate and
zstd clusters from 512 B to 2 MiB, VHDX, VHD, VDI, VMDK sparse and stream), worker counts,
measured and unmeasured; containers (xz, gzip, zstd, tar, GNU sparse tar). The output and the
progress figures are the same with the digest as without; digests wait in memory only briefly.
"""

from __future__ import annotations

import gzip
import lzma
import random
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import pytest
from ensureenv import tar_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qcow2writer import Compressed, Data, Qcow2Writer, Zero
from vdiwriter import VdiWriter
from vhdwriter import Block, VhdWriter
from vhdxwriter import VhdxWriter
from vmdkwriter import VmdkWriter

from pyimagecache import formats
from pyimagecache.contentdigest import REGION, ContentDigest, file_content_digest
from pyimagecache.converter import ConvertOptions, convert_image
from pyimagecache.errors import ContainerError, DigestError
from pyimagecache.opener import open_image
from pyimagecache.unpack import unpack

zstandard = pytest.importorskip("zstandard")

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KiB = 1 << 10
MiB = 1 << 20


def piece(rng: random.Random, size: int) -> bytes:
    """Contents with the shapes that matter for regions: random, partly zero, short, zero."""
    style = rng.choice(["random", "holes", "short", "zeros", "repeat"])
    if style == "random":
        return rng.randbytes(size)
    if style == "holes":
        out = bytearray(rng.randbytes(size))
        for block in range(0, size, 4096):
            if rng.random() < 0.6:
                out[block : block + 4096] = bytes(min(4096, size - block))
        return bytes(out)
    if style == "short":
        return rng.randbytes(rng.randrange(1, max(2, size // 5)))
    if style == "zeros":
        return bytes(size)
    return bytes([rng.randrange(1, 256)]) * (size // 2)


def sparse_indices(rng: random.Random, count: int) -> List[int]:
    """Which units hold something: a few, anywhere (the rest of the disk is unallocated)."""
    return sorted(rng.sample(range(count), k=min(count, rng.randrange(1, 7))))


Built = Tuple[bytes, bytes]  # (image file bytes, the raw disk it holds)


def qcow2_image(rng: random.Random) -> Built:
    cluster_bits = rng.choice([9, 12, 16, 17, 20, 21])
    cs = 1 << cluster_bits
    count = max(1, rng.randrange(1, 7 * MiB // cs + 2))
    size = max(1, count * cs - rng.choice([0, 0, 1, 511, cs // 2]))
    w = Qcow2Writer(
        size,
        cluster_bits=cluster_bits,
        compression=rng.choice(["deflate", "zstd"]),
    )
    for c in sparse_indices(rng, w.nb_clusters):
        kind = rng.choice(["data", "compressed", "compressed", "zero"])
        if kind == "data":
            w[c] = Data(piece(rng, cs))
        elif kind == "compressed":
            w[c] = Compressed(piece(rng, cs))
        else:
            w[c] = Zero(preallocated=rng.random() < 0.5)
    built = w.build()
    return bytes(built.data), built.expected()


def vhdx_image(rng: random.Random) -> Built:
    bs = rng.choice([MiB, 2 * MiB, 8 * MiB])
    size = max(512, rng.randrange(1, 12 * MiB) // 512 * 512)
    w = VhdxWriter(size, block_size=bs)
    for b in sparse_indices(rng, w.blocks):
        w.data(b, piece(rng, min(bs, size - b * bs)))
    return w.build(), w.expected()


def vhd_image(rng: random.Random) -> Built:
    bs = rng.choice([4096, 512 * KiB, 2 * MiB])
    size = max(512, rng.randrange(1, 8 * MiB) // 512 * 512)
    w = VhdWriter(size, block_size=bs)
    for b in sparse_indices(rng, w.count):
        w[b] = Block(piece(rng, bs))
    return bytes(w.build().data), w.expected()


def vdi_image(rng: random.Random) -> Built:
    size = max(512, rng.randrange(1, 9 * MiB))
    w = VdiWriter(size)
    for b in sparse_indices(rng, w.count):
        w[b] = piece(rng, MiB)
    return bytes(w.build().data), w.expected()


def vmdk_image(rng: random.Random) -> Built:
    stream = rng.random() < 0.5
    grain_sectors = rng.choice([8, 128, 2048])
    grain = grain_sectors * 512
    size = max(512, rng.randrange(1, 6 * MiB // grain + 1) * grain)
    w = VmdkWriter(size, grain_sectors=grain_sectors, gtes_per_gt=512, stream=stream)
    for g in sparse_indices(rng, w.nb_grains):
        w[g] = piece(rng, w.grain_length(g))
    built = w.build()
    return bytes(built.data), built.expected()


MAKERS: List[Tuple[str, Callable[[random.Random], Built]]] = [
    ("qcow2", qcow2_image),
    ("vhdx", vhdx_image),
    ("vhd", vhd_image),
    ("vdi", vdi_image),
    ("vmdk", vmdk_image),
]


def convert_with_digest(
    src: Path, dst: Path, workers: int, measure: bool
) -> Tuple[str, List[Tuple[int, Optional[int]]]]:
    digest = ContentDigest()
    calls: List[Tuple[int, Optional[int]]] = []
    if dst.exists():
        dst.unlink()
    with open_image(src) as img:
        options = ConvertOptions(
            workers=workers,
            measure=measure,
            digest=digest,
            progress=lambda done, total: calls.append((done, total)),
        )
        convert_image(img, dst, options)
    return digest.finish(), calls


@SETTINGS
@given(
    maker=st.sampled_from(MAKERS),
    seed=st.integers(0, 2**32),
    workers=st.sampled_from([1, 2, 3]),
    measure=st.booleans(),
)
def test_the_converter_digest_is_the_output_digest(
    tmp_path: Path,
    maker: Tuple[str, Callable[[random.Random], Built]],
    seed: int,
    workers: int,
    measure: bool,
) -> None:
    name, make = maker
    image, expected = make(random.Random(seed))
    src, out, plain = tmp_path / f"in.{name}", tmp_path / "out.raw", tmp_path / "plain.raw"
    src.write_bytes(image)
    digest, calls = convert_with_digest(src, out, workers, measure)
    assert out.read_bytes() == expected
    assert digest == file_content_digest(out) == ContentDigest.of(expected)
    # without the digest: the same bytes, the same progress figures at the end
    if plain.exists():
        plain.unlink()
    plain_calls: List[Tuple[int, Optional[int]]] = []
    with open_image(src) as img:
        options = ConvertOptions(
            workers=workers,
            measure=measure,
            progress=lambda done, total: plain_calls.append((done, total)),
        )
        convert_image(img, plain, options)
    assert plain.read_bytes() == expected
    assert calls[-1] == plain_calls[-1]


def test_a_changed_output_byte_no_longer_matches(tmp_path: Path) -> None:
    image, expected = vhdx_image(random.Random(7))
    src, out = tmp_path / "in.vhdx", tmp_path / "out.raw"
    src.write_bytes(image)
    digest, _ = convert_with_digest(src, out, 2, True)
    assert digest == file_content_digest(out)
    with open(out, "r+b") as f:  # one byte, anywhere: here in a hole
        f.seek(len(expected) - 1)
        f.write(b"\x01")
    assert file_content_digest(out) != digest


def test_digests_leave_memory_as_tasks_complete(tmp_path: Path) -> None:
    """Every region of a 64 MiB disk holds data; the digests waiting to be folded stay a
    handful (at most the converter's window of tasks, one region each), not one per region,
    however slow one task is."""
    from pyimagecache.converter import DIGEST_WINDOW

    class Watched(ContentDigest):
        most = 0

        def _store(self, index: int, length: int, digest: bytes) -> None:
            super()._store(index, length, digest)
            Watched.most = max(Watched.most, len(self._pending))

    rng = random.Random(1)
    size = 64 * MiB
    w = VhdxWriter(size, block_size=8 * MiB)
    for b in range(w.blocks):
        w.data(b, b"".join(rng.randbytes(64) + bytes(REGION - 64) for _ in range(8)))
    src, out = tmp_path / "in.vhdx", tmp_path / "out.raw"
    src.write_bytes(w.build())
    digest = Watched()
    with open_image(src) as img:
        read_into = img.read_into

        def slow_first(offset: int, length: int, buf: bytearray) -> None:
            if offset == 0:  # the first task: everything after it completes first
                time.sleep(0.5)
            read_into(offset, length, buf)

        img.read_into = slow_first  # type: ignore[method-assign]
        convert_image(img, out, ConvertOptions(workers=2, digest=digest))
    assert digest.finish() == ContentDigest.of(w.expected())
    assert 0 < Watched.most <= DIGEST_WINDOW * (2 + 2) + 1  # and the slow one itself


# -- unpack -----------------------------------------------------------------------------------


def sparse_disk(rng: random.Random, size: int) -> bytes:
    raw = bytearray(size)
    raw[:512] = b"\xeb\x63\x90" + rng.randbytes(509)  # looks like a boot sector, not a format
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(size)
        data = piece(rng, rng.choice([4096, 100_000, REGION + 3]))
        raw[at : at + len(data)] = data[: size - at]
    return bytes(raw)


CONTAINERS = {
    "xz": lzma.compress,
    "gz": lambda b: gzip.compress(b, compresslevel=1),
    "zst": lambda b: zstandard.ZstdCompressor(write_checksum=True).compress(b),
    "tar": lambda b: tar_of("disk.raw", b, tarfile.PAX_FORMAT),
    "tar.xz": lambda b: lzma.compress(tar_of("disk.img", b, tarfile.PAX_FORMAT)),
}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(CONTAINERS)),
    seed=st.integers(0, 2**32),
    size=st.integers(1, 5 * MiB).map(lambda n: n // 512 * 512 + 512),
)
def test_the_unpack_digest_is_the_output_digest(
    tmp_path: Path, kind: str, seed: int, size: int
) -> None:
    raw = sparse_disk(random.Random(seed), size)
    src, out = tmp_path / f"d.{kind}", tmp_path / "out.raw"
    src.write_bytes(CONTAINERS[kind](raw))
    digest = ContentDigest()
    assert unpack(src, out, digest=digest) == formats.RAW
    assert out.read_bytes() == raw
    assert digest.finish() == file_content_digest(out) == ContentDigest.of(raw)


def test_the_unpack_digest_of_a_gnu_sparse_tar(tmp_path: Path) -> None:
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("no tar")
    rng = random.Random(9)
    work = tmp_path / "w"
    work.mkdir()
    disk = work / "disk.raw"
    size = 9 * MiB + 512
    with open(disk, "wb") as f:  # holes, as image builds leave them
        f.truncate(size)
        for at in (0, 3 * MiB - 100, 8 * MiB + 4096):
            f.seek(at)
            f.write(rng.randbytes(70_000)[: size - at])
    raw = disk.read_bytes()
    for flags in (["--format=gnu"], ["--format=posix"]):
        src = tmp_path / "d.tar.xz"
        subprocess.run(
            [tar, *flags, "--sparse", "-cJf", str(src), "-C", str(work), "disk.raw"], check=True
        )
        out = tmp_path / "o.raw"
        digest = ContentDigest()
        assert unpack(src, out, digest=digest) == formats.RAW
        assert digest.finish() == file_content_digest(out) == ContentDigest.of(raw)


def test_a_disk_format_payload_is_not_digested_by_unpack(tmp_path: Path) -> None:
    """The caller converts it and takes the converter's digest: unpack spends nothing on it."""
    w = Qcow2Writer(4 * MiB)
    w[3] = Data(b"qcow2 data" * 100)
    src = tmp_path / "d.qcow2.xz"
    src.write_bytes(lzma.compress(bytes(w.build().data)))
    digest = ContentDigest()
    assert unpack(src, tmp_path / "o", digest=digest) == formats.QCOW2
    assert digest.size is None
    assert digest.finish(123) == ContentDigest.of(b"")  # it was fed nothing
    out = tmp_path / "o.raw"
    converted = ContentDigest()
    with open_image(tmp_path / "o") as img:
        convert_image(img, out, ConvertOptions(digest=converted))
    assert converted.finish() == file_content_digest(out) == ContentDigest.of(w.build().expected())


def test_a_corrupt_container_stops_the_digest_thread(tmp_path: Path) -> None:
    import threading

    raw = sparse_disk(random.Random(3), 3 * MiB)
    blob = bytearray(lzma.compress(raw))
    blob[len(blob) // 2] ^= 0xFF
    src = tmp_path / "d.xz"
    src.write_bytes(bytes(blob))
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ContainerError, match="corrupt or truncated"):
        unpack(src, tmp_path / "o", digest=ContentDigest())
    assert "pyimagecache-digest" not in {t.name for t in threading.enumerate()} - before


def test_background_feed_hands_back_what_feeding_raised() -> None:
    from pyimagecache.contentdigest import BackgroundFeed

    feed = BackgroundFeed(ContentDigest(10))
    feed.feed(0, b"x" * 20)  # past the end of a 10-byte disk: raised on the worker
    with pytest.raises(DigestError, match="pass the end"):
        feed.close()


@pytest.mark.parametrize(
    "maker", [qcow2_image, vhdx_image, vmdk_image], ids=["qcow2", "vhdx", "vmdk"]
)
def test_the_digest_of_a_conversion_while_downloading(tmp_path: Path, maker) -> None:  # type: ignore[no-untyped-def]
    """As ensure() converts a download still arriving: unmeasured, reads waiting for bytes."""
    import threading
    import time

    from pyimagecache.sourcefile import GrowingFile

    image, expected = maker(random.Random(12))
    src, dst = tmp_path / "growing", tmp_path / "out.raw"
    src.write_bytes(b"")
    grow = GrowingFile(src, len(image))

    def download() -> None:
        with open(src, "r+b") as f:
            for pos in range(0, len(image), 1 << 18):
                f.seek(pos)
                f.write(image[pos : pos + (1 << 18)])
                f.flush()
                grow.grew(min(len(image), pos + (1 << 18)))
                time.sleep(0.001)
        grow.finish()

    thread = threading.Thread(target=download)
    thread.start()
    digest = ContentDigest()
    try:
        with open_image(grow) as img:
            convert_image(img, dst, ConvertOptions(workers=2, measure=False, digest=digest))
    finally:
        thread.join()
    assert dst.read_bytes() == expected
    assert digest.finish() == file_content_digest(dst) == ContentDigest.of(expected)
