"""OVA packages and Vagrant boxes: the disk the OVF names, or the one disk image in the tar."""

from __future__ import annotations

import gzip
import subprocess
import tarfile
from pathlib import Path
from typing import List, Tuple

import pytest
from conftest import require_tool
from ensureenv import tar_members

import pyimagecache
from pyimagecache.errors import ContainerError, ExternalReferenceError, UnsupportedFormatError

MiB = 1 << 20

OVF = """<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>{files}</References>
  <DiskSection><Info>disks</Info>{disks}</DiskSection>
</Envelope>
"""


def ovf(*hrefs: str) -> bytes:
    files = "".join(f'<File ovf:id="f{i}" ovf:href="{h}"/>' for i, h in enumerate(hrefs))
    disks = "".join(
        f'<Disk ovf:diskId="d{i}" ovf:fileRef="f{i}" ovf:capacity="1"/>' for i in range(len(hrefs))
    )
    return OVF.format(files=files, disks=disks).encode()


def tar(members: List[Tuple[str, bytes]]) -> bytes:
    return tar_members(members, tarfile.USTAR_FORMAT)


def disk(seed: int) -> bytes:
    data = bytearray(2 * MiB)
    data[0:4] = b"\xeb\x63\x90\x00"
    data[MiB : MiB + 16] = bytes([seed]) * 16
    return bytes(data)


def qcow2_of(tmp: Path, data: bytes) -> bytes:
    qemu_img = require_tool("qemu-img")
    raw, out = tmp / "d.raw", tmp / "d.qcow2"
    raw.write_bytes(data)
    subprocess.run([qemu_img, "convert", "-O", "qcow2", str(raw), str(out)], check=True)
    return out.read_bytes()


def ensure(tmp: Path, blob: bytes, name: str = "pkg.ova") -> Path:
    src = tmp / name
    src.write_bytes(blob)
    return pyimagecache.ensure(src.as_uri(), tmp / "cache")


@pytest.mark.qemu
def test_ova_converts_the_disk_its_ovf_names(tmp_path: Path) -> None:
    wanted, decoy = disk(1), disk(2)
    blob = tar(
        [
            ("appliance.ovf", ovf("appliance-disk1.qcow2")),
            ("appliance.mf", b"SHA256(appliance.ovf)= 00\n"),
            ("other-disk.img", decoy),  # a disk image the descriptor does not name
            ("appliance-disk1.qcow2", qcow2_of(tmp_path, wanted)),
        ]
    )
    assert ensure(tmp_path, blob).read_bytes() == wanted


def test_ova_with_several_disks_is_refused_listing_them(tmp_path: Path) -> None:
    blob = tar([("x.ovf", ovf("a.vmdk", "b.vmdk")), ("a.vmdk", disk(1)), ("b.vmdk", disk(2))])
    with pytest.raises(UnsupportedFormatError, match=r"2 disks: a\.vmdk, b\.vmdk"):
        ensure(tmp_path, blob)
    assert not list((tmp_path / "cache").glob("*.raw"))


@pytest.mark.parametrize(
    "href",
    [
        "../../etc/passwd",
        "/abs/disk.img",
        "sub/disk.img",
        "file:///etc/passwd",
        "http://example.org/disk.vmdk",
        "nbd:127.0.0.1:10809",
        "..\\disk.img",
    ],
)
def test_ovf_disk_name_outside_the_package_is_refused(tmp_path: Path, href: str) -> None:
    blob = tar([("x.ovf", ovf(href)), ("disk.img", disk(1))])
    with pytest.raises(ExternalReferenceError, match="not a plain file name") as caught:
        ensure(tmp_path, blob)
    assert caught.value.reference == href
    assert not list((tmp_path / "cache").glob("*.raw"))


def test_ovf_naming_a_missing_file(tmp_path: Path) -> None:
    blob = tar([("x.ovf", ovf("absent.vmdk")), ("disk.img", disk(1))])
    with pytest.raises(ContainerError, match="names disk file 'absent.vmdk'"):
        ensure(tmp_path, blob)


def test_malformed_ovf(tmp_path: Path) -> None:
    blob = tar([("x.ovf", b"<Envelope><References>"), ("disk.img", disk(1))])
    with pytest.raises(ContainerError, match="not valid XML"):
        ensure(tmp_path, blob)


@pytest.mark.qemu
def test_vagrant_libvirt_box(tmp_path: Path) -> None:
    data = disk(3)
    blob = gzip.compress(
        tar(
            [
                ("metadata.json", b'{"provider": "libvirt"}'),
                ("Vagrantfile", b"Vagrant.configure('2') {}\n"),
                ("box.img", qcow2_of(tmp_path, data)),
            ]
        ),
        compresslevel=1,
    )
    assert ensure(tmp_path, blob, "debian.box").read_bytes() == data


def test_vagrant_virtualbox_box_uses_its_ovf(tmp_path: Path) -> None:
    data = disk(4)
    blob = tar(
        [
            ("Vagrantfile", b""),
            ("box.ovf", ovf("box-disk001.img")),
            ("box-disk001.img", data),
            ("metadata.json", b"{}"),
        ]
    )
    assert ensure(tmp_path, blob, "vbox.box").read_bytes() == data


@pytest.mark.qemu
def test_ova_with_a_stream_optimized_vmdk_as_vendors_ship_it(tmp_path: Path) -> None:
    qemu_img = require_tool("qemu-img")
    data = disk(5)
    raw, vmdk = tmp_path / "d.raw", tmp_path / "d.vmdk"
    raw.write_bytes(data)
    subprocess.run(
        [qemu_img, "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", str(raw), str(vmdk)],
        check=True,
    )
    blob = tar(
        [
            ("ubuntu.ovf", ovf("ubuntu-disk1.vmdk")),
            ("ubuntu.mf", b""),
            ("ubuntu-disk1.vmdk", vmdk.read_bytes()),
        ]
    )
    out = ensure(tmp_path, blob, "ubuntu.ova")
    assert out.read_bytes() == data
    sidecar = (out.parent / (out.name + ".json")).read_text()
    assert '"source_format": "tar"' in sidecar
