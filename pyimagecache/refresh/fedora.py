"""Fedora (download.fedoraproject.org): one compose per release, clear-signed CHECKSUM.

``<root>fedora/linux/releases/<N>/Cloud/<x86_64|aarch64>/images/`` (secondary arches under
``fedora-secondary/releases/``, riscv64 under ``alt/risc-v/release/`` with its own compose id)
holds ``Fedora-Cloud-Base-Generic-<N>-<compose>.<arch>.qcow2`` and
``Fedora-Cloud-<N>-<compose>-<arch>-CHECKSUM``: BSD lines with size comments, PGP clear-signed
by the release's key. A release never changes after GA, so a refresh finds the pinned compose
and keeps it. ``development/`` and ``rawhide/`` are not releases. (The riscv64 tree is
assumed to name its CHECKSUM the same way; no record shows it.)
"""

from __future__ import annotations

import re

from .layout import RPM_ARCHES, Context, Layout
from .snapshots import FEDORA

#: Where each arch's release tree lives below the root.
_TREES = {
    "amd64": "fedora/linux/releases",
    "arm64": "fedora/linux/releases",
    "ppc64le": "fedora-secondary/releases",
    "s390x": "fedora-secondary/releases",
    "riscv64": "alt/risc-v/release",
}


class Fedora(Layout):
    distro = "fedora"
    title = "Fedora"
    root = "https://download.fedoraproject.org/pub/"
    rule = FEDORA
    url = re.compile(
        r"(?P<root>.+/)(?P<tree>fedora/linux/releases|fedora-secondary/releases|alt/risc-v/release)"
        r"/(?P<version>\d+)/Cloud/(?P<arch>[a-z0-9_]+)/images/"
        r"Fedora-Cloud-Base-Generic-(?P<snapshot>(?P=version)-\d+\.\d+)\.(?P=arch)\.qcow2"
    )
    arches = {**RPM_ARCHES, "riscv64": "riscv64"}
    shape = (
        "<root>fedora/linux/releases/<N>/Cloud/<arch>/images/"
        "Fedora-Cloud-Base-Generic-<N>-<compose>.<arch>.qcow2"
    )
    sums_name = "Fedora-Cloud-{snapshot}-{arch}-CHECKSUM"
    sums_format = "bsd"
    clearsigned = True
    sums_note = "Fedora-Cloud-<N>-<compose>-<arch>-CHECKSUM (BSD lines), PGP clear-signed"

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{_TREES[arch]}/{ctx.version}/Cloud/{self.arches[arch]}/images/"


LAYOUT = Fedora()
