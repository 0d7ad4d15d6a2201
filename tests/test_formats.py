"""Format detection, and the rule it serves: no recognised non-raw format is published as raw.

Images come from qemu-img itself wherever it can write the format; the read-only formats
(bochs, cloop, dmg) and the VMDK extents qemu-img cannot create get their signature by hand.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
from conftest import require_tool

import pyimagecache
from pyimagecache import formats
from pyimagecache.errors import (
    ConversionError,
    ImageCacheError,
    ImageFormatError,
    UnsupportedFormatError,
    VmdkUnsupportedError,
)

MiB = 1 << 20

# (name, qemu-img create arguments, format detect must report)
QEMU_MADE: List[Tuple[str, List[str], str]] = [
    ("vmdk-monolithic-sparse", ["-f", "vmdk"], formats.VMDK),
    ("vmdk-stream", ["-f", "vmdk", "-o", "subformat=streamOptimized"], formats.VMDK),
    ("vmdk-flat-descriptor", ["-f", "vmdk", "-o", "subformat=monolithicFlat"], formats.VMDK),
    ("vhd-dynamic", ["-f", "vpc"], formats.VHD),
    ("vhd-fixed", ["-f", "vpc", "-o", "subformat=fixed"], formats.VHD),
    ("vhdx", ["-f", "vhdx"], formats.VHDX),
    ("vdi", ["-f", "vdi"], formats.VDI),
    ("qed", ["-f", "qed"], formats.QED),
    ("qcow", ["-f", "qcow"], formats.QCOW),
    ("parallels", ["-f", "parallels"], formats.PARALLELS),
    (
        "luks",
        ["-f", "luks", "--object", "secret,id=s0,data=x", "-o", "key-secret=s0"],
        formats.LUKS,
    ),
]


def _signed(offset: int, magic: bytes, size: int = 64 << 10) -> bytes:
    data = bytearray(size)
    data[offset : offset + len(magic)] = magic
    return bytes(data)


HANDMADE: Dict[str, Tuple[bytes, str]] = {
    "bochs": (_signed(0, b"Bochs Virtual HD Image"), formats.BOCHS),
    "cloop": (_signed(0, b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0\n"), formats.CLOOP),
    "dmg": (_signed((64 << 10) - 512, b"koly\x00\x00\x00\x04"), formats.DMG),
    "vmdk-cowd": (_signed(0, b"COWD\x01\x00\x00\x00"), formats.VMDK),
    "vmdk-sesparse": (_signed(0, b"\xbe\xba\xfe\xca\x00\x00\x00\x00"), formats.VMDK),
    "vmdk-descriptor": (b'# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\n', formats.VMDK),
    "zip": (b"", formats.ZIP),  # filled in below: a real archive
}


#: Hand-made signatures of VMDK subformats the reader refuses: no disk can come out of them.
NOT_IMAGES = ("vmdk-cowd", "vmdk-sesparse", "vmdk-descriptor")


def _zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("disk.raw", bytes(4096))
    return out.getvalue()


def qemu_image(tmp: Path, name: str, args: List[str]) -> Path:
    qemu_img = require_tool("qemu-img")
    path = tmp / f"{name}.img"
    command = [qemu_img, "create", "-q", *args, str(path), "4M"]
    # LUKS times its key derivation first, and qemu gives up ("Unable to get accurate CPU
    # usage") when a loaded machine starves that measurement: try again before failing.
    for _ in range(4):
        if subprocess.run(command, capture_output=True).returncode == 0:
            return path
    subprocess.run(command, check=True)
    return path


def test_detect_every_signature_in_the_table(tmp_path: Path) -> None:
    for name, (data, expected) in HANDMADE.items():
        blob = _zip_bytes() if name == "zip" else data
        path = tmp_path / name
        path.write_bytes(blob)
        assert formats.detect_file(path) == expected, name
    assert formats.detect(bz2.compress(b"x")) == formats.BZIP2
    assert formats.detect(bz2.compress(b"")) == formats.BZIP2
    assert formats.detect(b"BZh9" + bytes(508)) == formats.RAW  # no block magic: not bzip2
    assert formats.detect(b"QFI\xfb\x00\x00\x00\x02" + bytes(504)) == formats.QCOW2
    assert formats.detect(b"   # Disk DescriptorFile\n") == formats.VMDK
    # A trailer only counts in the last 512 bytes, and only when the tail is known.
    assert formats.detect(bytes(512)) == formats.RAW
    assert formats.detect(bytes(512), b"koly" + bytes(600)) == formats.RAW


@pytest.mark.qemu
@pytest.mark.parametrize(("name", "args", "expected"), QEMU_MADE, ids=[q[0] for q in QEMU_MADE])
def test_detect_images_made_by_qemu_img(
    tmp_path: Path, name: str, args: List[str], expected: str
) -> None:
    assert formats.detect_file(qemu_image(tmp_path, name, args)) == expected


def test_every_unconverted_format_is_refused_with_the_list(tmp_path: Path) -> None:
    for fmt in (formats.QED, formats.LUKS, formats.DMG, formats.ZIP):
        assert fmt not in formats.CONVERTIBLE
        with pytest.raises(UnsupportedFormatError) as info:
            formats.check_convertible(fmt, "x.img")
        assert info.value.format == fmt and "qcow2" in info.value.supported
        assert fmt in str(info.value) and "supported: raw, qcow2" in str(info.value)
        assert isinstance(info.value, ImageCacheError)


# -- ensure(): never a container's bytes under a .raw name ------------------------------------


def _sources(tmp: Path) -> List[Tuple[str, bytes]]:
    out = []
    for name, args, _ in QEMU_MADE:
        if name == "vmdk-flat-descriptor":
            continue  # a descriptor names a second file; served alone it is tested below
        out.append((name, qemu_image(tmp, name, args).read_bytes()))
    out += [(name, _zip_bytes() if name == "zip" else data) for name, (data, _) in HANDMADE.items()]
    return out


def _raw_outputs(cache: Path) -> List[Path]:
    return sorted(cache.glob("*.raw")) if cache.exists() else []


def _expected_raw(tmp: Path, src: Path) -> bytes:
    qemu_img = require_tool("qemu-img")
    out = tmp / (src.name + ".expected")
    data = src.read_bytes()
    # qemu-img probes only a file's first bytes: a fixed VHD must be named, or it is taken
    # for raw and its footer kept.
    fmt = ["-f", "vpc"] if formats.detect(data[:512], data[-512:]) == formats.VHD else []
    subprocess.run([qemu_img, "convert", *fmt, "-O", "raw", str(src), str(out)], check=True)
    return out.read_bytes()


@pytest.mark.qemu
def test_ensure_never_publishes_a_recognised_format_as_raw(tmp_path: Path) -> None:
    """Every recognised format through ensure() from a file:// URL, bare and inside each
    container: either the converted disk (as qemu-img converts it) or UnsupportedFormatError
    with nothing cached; never the container bytes under a .raw name."""
    made = tmp_path / "made"
    made.mkdir()
    wraps: Dict[str, Callable[[bytes], bytes]] = {
        "bare": lambda b: b,
        "xz": lambda b: lzma.compress(b, preset=0),
        "gz": lambda b: gzip.compress(b, compresslevel=1),
        "bz2": lambda b: bz2.compress(b, 1),
        "tar": lambda b: _tar("disk.img", b),
    }
    for name, data in _sources(made):
        fmt = formats.detect(data[: formats.SNIFF_SIZE], data[-formats.TAIL_SIZE :])
        for wrap, pack in wraps.items():
            if fmt == formats.ZIP and wrap != "bare":
                continue  # a zip inside a container is not a disk image at all
            src = tmp_path / "www" / f"{name}-{wrap}.bin"
            src.parent.mkdir(exist_ok=True)
            src.write_bytes(pack(data))
            cache = tmp_path / f"cache-{name}-{wrap}"
            if name in NOT_IMAGES:
                # VMDK signatures alone (COWD, seSparse, a descriptor): a VMDK refused by the
                # reader, nothing cached.
                with pytest.raises(ImageFormatError):
                    pyimagecache.ensure(src.as_uri(), cache)
                assert _raw_outputs(cache) == [], (name, wrap)
                continue
            if fmt in formats.CONVERTIBLE:
                disk = pyimagecache.ensure(src.as_uri(), cache)
                plain = made / f"{name}.plain"
                plain.write_bytes(data)
                assert disk.read_bytes() == _expected_raw(tmp_path, plain), (name, wrap)
                continue
            with pytest.raises(UnsupportedFormatError) as info:
                pyimagecache.ensure(src.as_uri(), cache)
            assert info.value.format == fmt, (name, wrap)
            assert _raw_outputs(cache) == [], (name, wrap)
            leftovers = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")]
            assert leftovers == [], (name, wrap, leftovers)


def _tar(member: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.qemu
def test_ensure_from_a_catalog_refuses_an_unconverted_format(tmp_path: Path) -> None:
    """Detection decides, not the name: a catalog entry whose URL ends in .raw but serves QED
    is refused and nothing is left at the raw name."""
    data = qemu_image(tmp_path, "q", ["-f", "qed"]).read_bytes()
    served = tmp_path / "www" / "disk.raw"
    served.parent.mkdir()
    served.write_bytes(data)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "q": {
                    "distro": "test",
                    "version": "1",
                    "snapshot": "20260601-1",
                    "arch": {
                        "amd64": {
                            "url": served.as_uri(),
                            "sha256": hashlib.sha256(data).hexdigest(),
                        }
                    },
                }
            }
        )
    )
    cache = tmp_path / "cache"
    with pytest.raises(UnsupportedFormatError, match=r"\bq\b.*qed"):
        pyimagecache.ensure("q", cache, catalog=catalog, arch="amd64")
    assert _raw_outputs(cache) == []
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_vmdk_descriptor_alone_is_not_raw(tmp_path: Path) -> None:
    src = tmp_path / "d.vmdk"
    src.write_bytes(HANDMADE["vmdk-descriptor"][0])
    cache = tmp_path / "cache"
    with pytest.raises(ConversionError):
        pyimagecache.ensure(src.as_uri(), cache)
    assert _raw_outputs(cache) == []


@pytest.mark.qemu
def test_ensure_refuses_a_descriptor_that_would_read_the_cache(tmp_path: Path) -> None:
    """A downloaded VMDK descriptor naming a file beside it must not turn another cached file
    into a disk: ensure takes only self-contained images."""
    cache = tmp_path / "cache"
    cache.mkdir()
    secret = cache / "other-20260601-1-amd64.raw"
    secret.write_bytes(b"another image's bytes" * 1000)
    descriptor = (
        b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        b'createType="monolithicFlat"\n\n'
        b'RW 40 FLAT "other-20260601-1-amd64.raw" 0\n'
    )
    for name, blob in (
        ("d.vmdk", descriptor),
        ("d.vmdk.xz", lzma.compress(descriptor)),
        ("d.tar", _tar("disk.vmdk", descriptor)),
    ):
        src = tmp_path / name
        src.write_bytes(blob)
        with pytest.raises(VmdkUnsupportedError, match="VMDK descriptor"):
            pyimagecache.ensure(src.as_uri(), cache)
        assert [p.name for p in _raw_outputs(cache)] == [secret.name]
