"""FreeBSD (download.freebsd.org): one build per RELEASE, only under ``Latest/``.

``<root><X.Y>-RELEASE/<amd64|aarch64|riscv64>/Latest/`` holds
``FreeBSD-<X.Y>-RELEASE-<amd64|arm64-aarch64|riscv-riscv64>[-BASIC-CLOUDINIT]-<ufs|zfs>.<fmt>.xz``
(qcow2, raw, vhd, vmdk) and CHECKSUM.SHA256 / CHECKSUM.SHA512 (BSD lines, over the
compressed ``.xz`` files: the digest is checked before anything is decompressed). No signature
is published beside them.

``Latest/`` is a pointer, but upstream publishes no dated https location for RELEASE VM images
(the permanent archive copy is http only), so FreeBSD pins go through it: ``catalog check``
allows exactly that segment for this family and no other, and the snapshot is the release
name, which FreeBSD does not rebuild. Should upstream re-publish a different file there
anyway, ``ensure`` fails on the pinned digest (never a silently different disk) and
``catalog refresh`` reports the new digest as an error instead of moving the pin.
"""

from __future__ import annotations

import re

from .layout import Candidates, Context, Layout
from .snapshots import FREEBSD
from .upstream import Upstream

_DIRS = {"amd64": "amd64", "arm64": "aarch64", "riscv64": "riscv64"}


class FreeBSD(Layout):
    distro = "freebsd"
    title = "FreeBSD"
    root = "https://download.freebsd.org/releases/VM-IMAGES/"
    rule = FREEBSD
    url = re.compile(
        r"(?P<root>.+/)(?P<snapshot>(?P<version>\d+\.\d+)-RELEASE)/(?P<dir>[a-z0-9]+)/Latest/"
        r"FreeBSD-(?P=snapshot)-(?P<arch>amd64|arm64-aarch64|riscv-riscv64)"
        r"-(?P<flavor>BASIC-CLOUDINIT-)?(?P<fs>ufs|zfs)\.qcow2\.xz"
    )
    arches = {"amd64": "amd64", "arm64": "arm64-aarch64", "riscv64": "riscv-riscv64"}
    pointer = "Latest"
    keep = ("flavor", "fs")
    shape = (
        "<root><X.Y>-RELEASE/<arch>/Latest/"
        "FreeBSD-<X.Y>-RELEASE-<arch>-BASIC-CLOUDINIT-ufs.qcow2.xz"
    )
    sums_name = "CHECKSUM.SHA256"
    sums_format = "bsd"
    sums_note = "CHECKSUM.SHA256 in Latest/ (BSD lines, of the .xz); no signature"
    unsigned = True

    def default(self, arch: str, group: str) -> str:
        return "BASIC-CLOUDINIT-" if group == "flavor" else "ufs"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        return Candidates(ctx.root, [f"{ctx.version}-RELEASE"])

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{snapshot}/{_DIRS[arch]}/Latest/"


LAYOUT = FreeBSD()
