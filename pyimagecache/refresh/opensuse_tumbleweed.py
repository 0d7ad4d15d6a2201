"""openSUSE Tumbleweed (download.opensuse.org): a rolling release, one snapshot at a time.

``<root>tumbleweed/appliances/`` (x86_64) and ``<root>ports/aarch64/tumbleweed/appliances/``
(aarch64, built apart with its own snapshots) hold
``openSUSE-Tumbleweed-Minimal-VM.<arch>-<n.n.n>-Cloud-Snapshot<YYYYMMDD>.qcow2`` beside the
undated moving ``openSUSE-Tumbleweed-Minimal-VM.<arch>-Cloud.qcow2``, other flavours
(``kvm-and-xen``, ``VMware``, ``MS-HyperV``), MicroOS and container images, a directory-wide
SHA256SUMS and, per image, ``<file>.sha256`` (coreutils line; lima's
``update-template-opensuse.sh`` and other public records read it for Tumbleweed as for Leap).
The detached ``<file>.sha256.asc`` is assumed as Leap has it, the same build service
publishing both; no record shows Tumbleweed's.

There is no dated directory: ``tumbleweed/`` is the distribution's only https location, so
pins go through it (:attr:`Layout.pointer`), and the snapshot is in the file name. Upstream
keeps only the current snapshot's files, so a pin ages out within days: ``ensure`` then
falls back to the newest snapshot, verified against its ``.sha256``, and ``catalog
refresh`` moves the pin.
"""

from __future__ import annotations

import re

from .layout import ARM64_OPTIONAL, Context, Layout
from .snapshots import OPENSUSE_TUMBLEWEED

_DIRS = {"amd64": "tumbleweed/appliances/", "arm64": "ports/aarch64/tumbleweed/appliances/"}


class OpenSUSETumbleweed(Layout):
    distro = "opensuse-tumbleweed"
    title = "openSUSE Tumbleweed"
    root = "https://download.opensuse.org/"
    rule = OPENSUSE_TUMBLEWEED
    # The root is the shortest prefix, so aarch64's ports/aarch64/ stays out of it.
    url = re.compile(
        r"(?P<root>.+?/)(?P<ports>ports/aarch64/)?tumbleweed/appliances/"
        r"openSUSE-Tumbleweed-Minimal-VM\.(?P<arch>x86_64|aarch64)-\d+\.\d+\.\d+"
        r"-Cloud-Snapshot(?P<snapshot>\d{8})\.qcow2"
    )
    arches = {"amd64": "x86_64", "arm64": "aarch64"}
    #: aarch64 is built in ports/ on its own schedule; no public record of its digest.
    arm64 = ARM64_OPTIONAL
    per_arch = True
    pointer = "tumbleweed"
    shape = (
        "<root>[ports/aarch64/]tumbleweed/appliances/"
        "openSUSE-Tumbleweed-Minimal-VM.<arch>-<n.n.n>-Cloud-Snapshot<date>.qcow2"
    )
    sums_name = "{image}.sha256"
    signature = ".asc"
    sums_note = "<image>.sha256 (coreutils line), detached <image>.sha256.asc"

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return ctx.root + _DIRS[arch]


LAYOUT = OpenSUSETumbleweed()
