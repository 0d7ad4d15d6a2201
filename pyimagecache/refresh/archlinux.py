"""Arch Linux (arch-boxes on geo.mirror.pkgbuild.com): a directory per CI build.

``<root>v<YYYYMMDD>.<job>/`` (``latest/`` is the moving one; dated directories are removed
after several months) holds ``Arch-Linux-x86_64-cloudimg-<YYYYMMDD>.<job>.qcow2``, the same
image under the undated ``Arch-Linux-x86_64-cloudimg.qcow2``, ``basic`` images, and per file
``<file>.SHA256`` (coreutils line) with a detached ``<file>.SHA256.sig`` (key in the
arch-boxes README). Pins use the dated file name. Upstream builds x86_64 only.
"""

from __future__ import annotations

import re

from .layout import ARM64_NONE, Candidates, Context, Layout
from .snapshots import ARCHLINUX
from .upstream import Upstream


class ArchLinux(Layout):
    distro = "archlinux"
    title = "Arch Linux"
    root = "https://geo.mirror.pkgbuild.com/images/"
    rule = ARCHLINUX
    url = re.compile(
        r"(?P<root>.+/)v(?P<snapshot>\d{8}\.\d+)/"
        r"Arch-Linux-(?P<arch>x86_64)-cloudimg-(?P=snapshot)\.qcow2"
    )
    arches = {"amd64": "x86_64"}
    arm64 = ARM64_NONE
    shape = "<root>v<date>.<job>/Arch-Linux-x86_64-cloudimg-<date>.<job>.qcow2"
    sums_name = "{image}.SHA256"
    signature = ".sig"
    sums_note = "<image>.SHA256 (coreutils line), detached <image>.SHA256.sig"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        return self.dir_candidates(up, ctx.root, prefix="v")

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}v{snapshot}/"


LAYOUT = ArchLinux()
