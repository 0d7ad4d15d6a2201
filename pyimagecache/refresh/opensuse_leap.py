"""openSUSE Leap (download.opensuse.org): build-numbered appliances, a sidecar per image.

``<root><X.Y>/appliances/`` holds, per arch and with a per-arch build counter,
``Leap-<X.Y>-Minimal-VM.<arch>-Cloud-Build<n>.<m>.qcow2`` (16.x) or
``openSUSE-Leap-<X.Y>-Minimal-VM.<arch>-<X.Y.Z>-Cloud-Build<n>.<m>.qcow2`` (15.x), beside the
unversioned moving names (``...-Cloud.qcow2``, whose content changes under the same URL),
other flavours and their sidecars. Each image has ``<file>.sha256`` (coreutils line) and a
detached ``<file>.sha256.asc`` from the openSUSE Project Signing Key. Build files disappear
when the next maintenance image is published: expect pins to age out and refresh often.
Every arch is resolved on its own and keeps its own ``Build<n>.<m>`` snapshot.
"""

from __future__ import annotations

import re

from .layout import ARM64_OPTIONAL, Context, Layout
from .snapshots import OPENSUSE_LEAP


class OpenSUSELeap(Layout):
    distro = "opensuse-leap"
    title = "openSUSE Leap"
    root = "https://download.opensuse.org/distribution/leap/"
    rule = OPENSUSE_LEAP
    url = re.compile(
        r"(?P<root>.+/)(?P<version>\d+\.\d+)/appliances/(?P<prefix>openSUSE-Leap|Leap)-(?P=version)"
        r"-Minimal-VM\.(?P<arch>x86_64|aarch64)(?P<patch>-(?P=version)\.\d+)?"
        r"-Cloud-(?P<snapshot>Build\d+\.\d+)\.qcow2"
    )
    arches = {"amd64": "x86_64", "arm64": "aarch64"}
    per_arch = True
    #: aarch64 appliances are built apart, with their own counter; not every release has a
    #: pin to be had (no public record of a Leap 15.6 aarch64 build's digest was found).
    arm64 = ARM64_OPTIONAL
    keep = ("prefix",)
    shape = "<root><X.Y>/appliances/Leap-<X.Y>-Minimal-VM.<arch>-Cloud-Build<n>.<m>.qcow2"
    sums_name = "{image}.sha256"
    signature = ".asc"
    sums_note = "<image>.sha256 (coreutils line), detached <image>.sha256.asc"

    def default(self, arch: str, group: str) -> str:
        return "Leap"

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{ctx.version}/appliances/"


LAYOUT = OpenSUSELeap()
