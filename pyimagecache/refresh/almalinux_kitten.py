"""AlmaLinux Kitten (kitten.repo.almalinux.org): dated builds in one directory per arch.

``<root><M>-kitten/cloud/<arch>/images/`` holds
``AlmaLinux-Kitten-GenericCloud-<M>-<YYYYMMDD>.<n>.<arch>.qcow2`` for every build, beside the
moving ``AlmaLinux-Kitten-GenericCloud-<M>-latest.<arch>.qcow2`` and other variants, and one
CHECKSUM (coreutils lines, SHA-256) with its detached CHECKSUM.asc, as AlmaLinux's (signed
with the AlmaLinux 10 key; that Kitten's cloud directories carry the .asc as AlmaLinux 8 and 9
do is assumed from AlmaLinux's practice, not seen in a record). Unlike AlmaLinux there are no minor
releases: the builds of a major share one directory. Each arch is built on its own day
(lima's template pins x86_64 and aarch64 at 20260501.0, s390x and ppc64le at 20260502.0,
riscv64 at 20260302.0), so every arch is resolved on its own and keeps its own snapshot.
"""

from __future__ import annotations

import re

from .layout import RPM_ARCHES, Context, Layout
from .snapshots import ALMALINUX_KITTEN


class AlmaLinuxKitten(Layout):
    distro = "almalinux-kitten"
    title = "AlmaLinux Kitten"
    root = "https://kitten.repo.almalinux.org/"
    rule = ALMALINUX_KITTEN
    url = re.compile(
        r"(?P<root>.+/)(?P<version>\d+)-kitten/cloud/(?P<arch>[a-z0-9_]+)/images/"
        r"AlmaLinux-Kitten-GenericCloud-(?P=version)-(?P<snapshot>\d{8}\.\d+)\.(?P=arch)\.qcow2"
    )
    arches = {**RPM_ARCHES, "riscv64": "riscv64"}
    per_arch = True
    shape = (
        "<root><M>-kitten/cloud/<arch>/images/"
        "AlmaLinux-Kitten-GenericCloud-<M>-<date>.<n>.<arch>.qcow2"
    )
    sums_name = "CHECKSUM"
    signature = ".asc"
    sums_note = "CHECKSUM per arch directory (coreutils, SHA-256), detached CHECKSUM.asc"

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{ctx.version}-kitten/cloud/{self.arches[arch]}/images/"


LAYOUT = AlmaLinuxKitten()
