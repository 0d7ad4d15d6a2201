"""Malformed VMDKs: each case breaks one thing in a valid writer-made extent or descriptor and
expects a specific VmdkError subclass whose message names the field, or the table and the
entry's index/offset. Every case also checks: no other exception type, no hang (SIGALRM), and
the conversion leaves neither the output nor a temporary file behind.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Type

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from malformed import no_hang  # noqa: F401 (autouse: every case fails rather than hangs)
from vmdkwriter import GD_AT_END, SECTOR, Built, VmdkWriter, descriptor_text

from pyimagecache.converter import ConvertOptions, convert, convert_image
from pyimagecache.errors import VmdkCorruptError, VmdkError, VmdkUnsupportedError
from pyimagecache.sourcefile import SourceFile
from pyimagecache.vmdk import open_image
from pyimagecache.vmdk.descriptor import check_create_type, parse_descriptor, resolve_extent

G = 4096  # 8-sector grains keep every case small


def base(stream: bool = False, gd_at_end: bool = True, zero_grain: bool = False) -> VmdkWriter:
    w = VmdkWriter(
        40 * G, grain_sectors=8, gtes_per_gt=16, stream=stream, gd_at_end=gd_at_end,
        zero_grain=zero_grain,
    )  # fmt: skip
    w[0] = b"\x11" * G
    w[1] = bytes(range(256)) * (G // 256)
    w[5] = b"\x55" * 100
    w[17] = b"second table" * 10
    w[39] = b"\x99" * G
    return w


def sparse(**kw: bool) -> Built:
    return base(**kw).build()


def stream(**kw: bool) -> Built:
    return base(stream=True, **kw).build()


@dataclass
class Case:
    name: str
    make: Callable[[Path], Path]  # writes the image into a directory, returns its path
    error: Type[VmdkError]
    message: str  # regex, searched case-insensitively

    def __str__(self) -> str:
        return self.name


Make = Callable[[Path], Path]
Builder = Callable[[], Built]


def image(edit: Callable[[Built], None], builder: Builder = sparse) -> Make:
    def make(directory: Path) -> Path:
        built = builder()
        edit(built)
        path = directory / "disk.vmdk"
        built.save(path)
        return path

    return make


def header(field: str, value: object, builder: Builder = sparse, footer: bool = False) -> Make:
    return image(lambda b: b.set_header(field, value, footer=footer), builder)


def truncated(keep: Callable[[Built], int], builder: Builder = sparse) -> Make:
    def edit(b: Built) -> None:
        del b.data[keep(b) :]

    return image(edit, builder)


def marker(
    grain: int, lba: Optional[int] = None, size: Optional[int] = None
) -> Callable[[Built], None]:
    def edit(b: Built) -> None:
        at = b.grain_offsets[grain]
        old_lba, old_size = struct.unpack_from("<QI", b.data, at)
        struct.pack_into("<QI", b.data, at, old_lba if lba is None else lba,
                         old_size if size is None else size)  # fmt: skip

    return edit


def grain_stream(grain: int, data: bytes) -> Callable[[Built], None]:
    """Replace a compressed grain's stream (it must fit where the old one was)."""

    def edit(b: Built) -> None:
        at = b.grain_offsets[grain]
        lba, size = struct.unpack_from("<QI", b.data, at)
        room = -(-(12 + size) // SECTOR) * SECTOR - 12
        assert len(data) <= room, (len(data), room)
        struct.pack_into("<QI", b.data, at, lba, len(data))
        b.data[at + 12 : at + 12 + len(data)] = data

    return edit


def descriptor(lines: str, create: str = "monolithicFlat", extra: str = "",
               files: Optional[dict] = None) -> Callable[[Path], Path]:  # type: ignore[type-arg]  # fmt: skip
    def make(directory: Path) -> Path:
        for name, content in (files or {}).items():
            (directory / name).write_bytes(content)
        path = directory / "disk.vmdk"
        path.write_bytes(descriptor_text(create, lines.splitlines(), extra=extra))
        return path

    return make


FLAT = {"flat.img": bytes(8192)}


def text(body: str) -> Make:
    def make(directory: Path) -> Path:
        (directory / "flat.img").write_bytes(bytes(8192))
        return _write(directory / "disk.vmdk", ("# Disk DescriptorFile\n" + body).encode())

    return make


CASES = [
    # -- header fields ------------------------------------------------------------------
    Case("version-0", header("version", 0), VmdkCorruptError, "version 0"),
    Case("version-4", header("version", 4), VmdkUnsupportedError, "version 4"),
    Case("check-bytes", header("checkBytes", b"\n \n\n"), VmdkCorruptError, "check bytes"),
    Case("compress-algorithm", header("compressAlgorithm", 2), VmdkUnsupportedError,
         "compressAlgorithm 2"),
    Case("compressed-no-markers", header("flags", 0x10003, stream), VmdkUnsupportedError,
         "markers"),
    Case("grain-size-0", header("grainSize", 0), VmdkCorruptError, "grainSize 0"),
    Case("grain-size-huge", header("grainSize", 0x200001), VmdkCorruptError, "grainSize"),
    Case("compressed-grain-4m", header("grainSize", 8192, lambda: stream(gd_at_end=False)),
         VmdkUnsupportedError, "grainSize 8192"),
    Case("gtes-0", header("numGTEsPerGT", 0), VmdkCorruptError, "numGTEsPerGT 0"),
    Case("gtes-513", header("numGTEsPerGT", 513), VmdkCorruptError, "numGTEsPerGT 513"),
    Case("capacity-2^62", header("capacity", 1 << 62), VmdkCorruptError, "capacity"),
    Case("gd-too-large", header("capacity", (5 << 20) * 128), VmdkUnsupportedError,
         "grain directory entries"),
    Case("overhead-past-eof", header("overHead", 1 << 20), VmdkCorruptError,
         "overHead.*truncated"),
    Case("descriptor-past-eof", header("descriptorOffset", 1 << 20), VmdkCorruptError,
         "descriptorOffset"),
    Case("descriptor-size", header("descriptorSize", 4096), VmdkCorruptError, "descriptorSize"),
    Case("gd-offset-0", header("gdOffset", 0), VmdkCorruptError, "gdOffset 0"),
    Case("gd-past-eof", header("gdOffset", 1 << 24), VmdkCorruptError, "gdOffset"),
    Case("capacity-past-gd", header("capacity", 50_000 * 128), VmdkCorruptError,
         "gdOffset.*runs past the end"),
    # -- footer of a GD_AT_END stream ---------------------------------------------------
    Case("footer-magic", header("magic", b"XXXX", stream, footer=True), VmdkCorruptError,
         "footer.*magic"),
    Case("footer-gd-at-end", header("gdOffset", GD_AT_END, stream, footer=True),
         VmdkCorruptError, "footer.*GD_AT_END"),
    Case("footer-version", header("version", 9, stream, footer=True), VmdkUnsupportedError,
         "footer.*version 9"),
    Case("footer-marker-type",
         image(lambda b: struct.pack_into("<I", b.data, b.footer_offset - 500, 2), stream),
         VmdkCorruptError, "footer marker"),
    Case("eos-marker", image(lambda b: struct.pack_into("<Q", b.data, len(b.data) - 512, 7),
                             stream), VmdkCorruptError, "end-of-stream marker"),
    Case("stream-truncated", truncated(lambda b: len(b.data) - 700, stream), VmdkCorruptError,
         "footer|end-of-stream"),
    Case("stream-tiny", truncated(lambda b: 1000, stream), VmdkCorruptError, "footer|overHead"),
    # -- grain directory and tables -----------------------------------------------------
    Case("gd-entry-past-eof", image(lambda b: b.set_gd_entry(1, 1 << 30)), VmdkCorruptError,
         "grain directory entry 1"),
    Case("gd-entry-on-gd", image(lambda b: b.set_gd_entry(0, b.gd_offset // SECTOR)),
         VmdkCorruptError, "grain directory entry 0.*overlaps the grain directory"),
    Case("gd-entries-share",
         image(lambda b: b.set_gd_entry(2, b.gt_offsets[0] // SECTOR)),
         VmdkCorruptError, "grain directory entry 2.*overlaps.*entry 0"),
    Case("gt-entry-past-eof", image(lambda b: b.set_gt_entry(0, 3, 1 << 30)), VmdkCorruptError,
         r"grain table 0 .*entry 3 .*past the end"),
    Case("gt-entry-in-metadata", image(lambda b: b.set_gt_entry(1, 2, 2)), VmdkCorruptError,
         r"grain table 1 .*entry 2 .*overHead"),
    Case("gt-entry-1-no-flag", image(lambda b: b.set_gt_entry(0, 4, 1)), VmdkCorruptError,
         "entry 4.*zero-grain flag"),
    Case("stream-gt-entry-past-eof",
         image(lambda b: b.set_gt_entry(0, 0, len(b.data) // SECTOR), stream),
         VmdkCorruptError, r"grain table 0 .*entry 0"),
    Case("sparse-truncated-in-grains", truncated(lambda b: b.grain_offsets[17]),
         VmdkCorruptError, r"grain table 1 .*entry 1 .*past the end"),
    Case("sparse-truncated-in-tables", truncated(lambda b: b.gt_offsets[1] + 10),
         VmdkCorruptError, "overHead"),
    # -- compressed grains --------------------------------------------------------------
    Case("marker-lba", image(marker(5, lba=99 * 8), stream), VmdkCorruptError,
         "compressed grain 5.*lba is 792"),
    Case("marker-size-0", image(marker(1, size=0), stream), VmdkCorruptError,
         "compressed grain 1.*size 0"),
    Case("marker-size-huge", image(marker(1, size=1 << 31), stream), VmdkCorruptError,
         "compressed grain 1.*size"),
    Case("marker-size-past-eof",
         truncated(lambda b: b.grain_offsets[39] + 20, lambda: stream(gd_at_end=False)),
         VmdkCorruptError, "compressed grain 39.*past the end"),
    Case("grain-garbage", image(grain_stream(0, b"\x78\x9c" + b"\xff" * 30), stream),
         VmdkCorruptError, "compressed grain 0.*decompress"),
    Case("grain-too-long", image(grain_stream(5, zlib.compress(bytes(2 * G))), stream),
         VmdkCorruptError, "compressed grain 5.*more than"),
    Case("grain-too-short", image(grain_stream(1, zlib.compress(b"x" * 100)), stream),
         VmdkCorruptError, "compressed grain 1.*produced 100"),
    Case("grain-stream-cut", image(grain_stream(1, zlib.compress(bytes(G))[:-6]), stream),
         VmdkCorruptError, "compressed grain 1.*truncated"),
    # -- descriptors --------------------------------------------------------------------
    Case("path-dotdot", descriptor('RW 16 FLAT "../x" 0'), VmdkUnsupportedError, r"\.\."),
    Case("path-absolute", descriptor('RW 16 FLAT "/etc/passwd" 0'), VmdkUnsupportedError,
         "absolute"),
    Case("path-missing", descriptor('RW 16 FLAT "gone.img" 0'), VmdkUnsupportedError,
         "missing"),
    Case("path-too-long", descriptor(f'RW 16 FLAT "{"a" * 300}" 0'), VmdkUnsupportedError,
         "cannot be opened.*too long"),
    Case("path-control", descriptor('RW 16 FLAT "a\x01b" 0'), VmdkCorruptError,
         "control characters"),
    Case("create-vmfsSparse", descriptor('RW 16 VMFSSPARSE "x-delta.vmdk"', "vmfsSparse"),
         VmdkUnsupportedError, "vmfsSparse"),
    Case("create-seSparse", descriptor('RW 16 SESPARSE "x-sesparse.vmdk"', "seSparse"),
         VmdkUnsupportedError, "seSparse"),
    Case("extent-sesparse", descriptor('RW 16 SESPARSE "x.vmdk"', "monolithicSparse"),
         VmdkUnsupportedError, "seSparse"),
    Case("extent-vmfssparse", descriptor('RW 16 VMFSSPARSE "x.vmdk"', "vmfs"),
         VmdkUnsupportedError, "vmfsSparse"),
    Case("create-unknown", descriptor('RW 16 FLAT "flat.img" 0', "fullDevice", files=FLAT),
         VmdkUnsupportedError, "fullDevice"),
    Case("delta-link", descriptor('RW 16 FLAT "flat.img" 0', files=FLAT,
                                  extra='parentFileNameHint="base.vmdk"\n'),
         VmdkUnsupportedError, "delta link.*base.vmdk"),
    Case("no-extents", descriptor(""), VmdkCorruptError, "no extent"),
    Case("bad-extent-line", descriptor("RW many FLAT \"flat.img\" 0", files=FLAT),
         VmdkCorruptError, "line 8.*invalid extent line"),
    Case("flat-no-offset", descriptor('RW 16 FLAT "flat.img"', files=FLAT), VmdkCorruptError,
         "line 8.*offset"),
    Case("sparse-with-offset", descriptor('RW 16 SPARSE "s.vmdk" 3'), VmdkCorruptError,
         "only FLAT"),
    Case("zero-sectors", descriptor('RW 0 FLAT "flat.img" 0', files=FLAT), VmdkCorruptError,
         "size 0"),
    Case("noaccess", descriptor('NOACCESS 16 FLAT "flat.img" 0', files=FLAT),
         VmdkUnsupportedError, "NOACCESS"),
    Case("too-many-extents", descriptor('RW 1 FLAT "flat.img" 0\n' * 1025, files=FLAT),
         VmdkUnsupportedError, "more than 1024 extents"),
    Case("long-line", descriptor('RW 16 FLAT "flat.img" 0', extra="#" + "x" * 5000 + "\n",
                                 files=FLAT), VmdkCorruptError, "longer than 4096"),
    Case("long-name", descriptor(f'RW 16 FLAT "{"n" * 600}" 0'), VmdkCorruptError,
         "file name of 600 bytes"),
    Case("bad-cid", text('CID=zz\ncreateType="vmfs"\nRW 16 VMFS "flat.img"\n'),
         VmdkCorruptError, "CID='zz'"),
    Case("bad-version", text('version=7\ncreateType="vmfs"\nRW 16 VMFS "flat.img"\n'),
         VmdkUnsupportedError, "version '7'"),
    Case("no-create-type", descriptor('RW 16 FLAT "flat.img" 0', create="", files=FLAT),
         VmdkUnsupportedError, "createType ''"),
    Case("sparse-extent-not-sparse",
         descriptor('RW 16 SPARSE "flat.img"', "twoGbMaxExtentSparse", files=FLAT),
         VmdkCorruptError, "SPARSE extent 'flat.img' has magic"),
    Case("sparse-extent-cowd",
         descriptor('RW 16 SPARSE "c.vmdk"', "twoGbMaxExtentSparse",
                    files={"c.vmdk": b"COWD" + bytes(2044)}),
         VmdkUnsupportedError, "vmfsSparse"),
    Case("sparse-extent-corrupt",
         descriptor('RW 16 SPARSE "s.vmdk"', "twoGbMaxExtentSparse",
                    files={"s.vmdk": b"KDMV" + struct.pack("<I", 0) + bytes(504)}),
         VmdkCorruptError, "extent 's.vmdk'.*version 0"),
    Case("too-large-descriptor", descriptor('RW 16 FLAT "flat.img" 0', files=FLAT,
                                            extra="#\n" * 600_000), VmdkCorruptError,
         "descriptor"),
    Case("cowd-image", lambda d: _write(d / "disk.vmdk", b"COWD" + bytes(2044)),
         VmdkUnsupportedError, "vmfsSparse"),
    Case("sesparse-image",
         lambda d: _write(d / "disk.vmdk", struct.pack("<Q", 0xCAFEBABE) + bytes(2040)),
         VmdkUnsupportedError, "seSparse"),
    Case("embedded-delta-link",
         image(lambda b: _embed(b, b'parentCID=12345678\nparentFileNameHint="base.vmdk"\n')),
         VmdkUnsupportedError, "delta link"),
]  # fmt: skip


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _embed(b: Built, text: bytes) -> None:
    at = b.descriptor_offset
    end = b.data.index(b"\0", at)
    b.data[end : end + len(text)] = text


def exercise(path: Path, out: Path) -> None:
    with open_image(SourceFile.open(path)) as img:
        assert sum(e.length for e in img.extents()) == img.virtual_size
        convert_image(img, out, ConvertOptions(workers=2))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_malformed(case: Case, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    path = case.make(src)
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "disk.raw"
    with pytest.raises(case.error, match=f"(?i){case.message}"):
        exercise(path, out)
    assert os.listdir(outdir) == []
    # through the package's converter (and opener) too, when the file is large enough for
    # the opener's trailer read (see test_small_descriptor_through_opener)
    if path.stat().st_size >= 512:
        with pytest.raises(case.error):
            convert(path, out)
        assert os.listdir(outdir) == []


def test_symlink_out_of_the_directory(tmp_path: Path) -> None:
    outside = tmp_path / "secret.img"
    outside.write_bytes(b"s" * 8192)
    inside = tmp_path / "vm"
    inside.mkdir()
    (inside / "flat.img").symlink_to(outside)
    (inside / "d.vmdk").write_bytes(descriptor_text("monolithicFlat", ['RW 16 FLAT "flat.img" 0']))
    with pytest.raises(VmdkUnsupportedError, match="outside the descriptor's directory"):
        open_image(SourceFile.open(inside / "d.vmdk"))
    # a link that stays inside is followed
    (inside / "real.img").write_bytes(b"r" * 8192)
    (inside / "flat.img").unlink()
    (inside / "flat.img").symlink_to("real.img")
    with open_image(SourceFile.open(inside / "d.vmdk")) as img:
        assert img.read(0, 8192) == b"r" * 8192


def test_directory_as_extent(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "d.vmdk").write_bytes(descriptor_text("monolithicFlat", ['RW 16 FLAT "sub" 0']))
    with pytest.raises(VmdkUnsupportedError, match="not a regular file"):
        open_image(SourceFile.open(tmp_path / "d.vmdk"))


def test_sparse_truncated_inside_last_grain_reads_zeros(tmp_path: Path) -> None:
    """As in qemu, a data grain that starts inside the file but runs past its end reads as
    zeros past the end (qemu-img check accepts it too)."""
    built = sparse()
    del built.data[built.grain_offsets[39] + 100 :]
    path = tmp_path / "t.vmdk"
    built.save(path)
    with open_image(SourceFile.open(path)) as img:
        assert img.read(39 * G, G) == b"\x99" * 100 + bytes(G - 100)


def test_flat_extent_shorter_than_declared_reads_zeros(tmp_path: Path) -> None:
    (tmp_path / "f.img").write_bytes(b"f" * 1000)
    (tmp_path / "d.vmdk").write_bytes(descriptor_text("monolithicFlat", ['RW 16 FLAT "f.img" 0']))
    with open_image(SourceFile.open(tmp_path / "d.vmdk")) as img:
        assert img.read(0, 8192) == b"f" * 1000 + bytes(7192)


def test_small_descriptor_through_opener(tmp_path: Path) -> None:
    (tmp_path / "f.img").write_bytes(b"f" * 8192)
    path = tmp_path / "d.vmdk"
    path.write_bytes(b'# Disk DescriptorFile\ncreateType="monolithicFlat"\nRW 16 FLAT "f.img" 0\n')
    convert(path, tmp_path / "out.raw")
    assert (tmp_path / "out.raw").read_bytes() == b"f" * 8192


_LINES = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda a, n, t, name, off: f"{a} {n} {t} {name} {off}",
        st.sampled_from(["RW", "RDONLY", "NOACCESS", "rw"]),
        st.one_of(st.integers(-5, 2**70).map(str), st.text(max_size=4)),
        st.sampled_from(["SPARSE", "FLAT", "ZERO", "VMFS", "VMFSSPARSE", "sparse", "X"]),
        st.one_of(st.text(max_size=20).map(lambda s: f'"{s}"'), st.text(max_size=5)),
        st.one_of(st.just(""), st.integers(-3, 2**70).map(str)),
    ),
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(["version", "CID", "parentCID", "createType", "parentFileNameHint"]),
        st.text(max_size=12),
    ),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINES, max_size=12), embedded=st.booleans())
def test_descriptor_text_raises_only_vmdk_errors(lines: List[str], embedded: bool) -> None:
    raw = ("# Disk DescriptorFile\n" + "\n".join(lines)).encode("utf-8", "surrogatepass")
    try:
        desc = parse_descriptor(raw, with_extents=not embedded)
        check_create_type(desc, "test")
    except VmdkError:
        return


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=40))
def test_extent_names_never_leave_the_directory(tmp_path: Path, name: str) -> None:
    try:
        path = resolve_extent(tmp_path, name, "test")
    except VmdkError:
        return
    assert os.path.commonpath([os.path.realpath(tmp_path), str(path)]) == os.path.realpath(tmp_path)
