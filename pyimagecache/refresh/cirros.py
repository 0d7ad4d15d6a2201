"""CirrOS (download.cirros-cloud.net): a directory per release, SHA256SUMS beside the images.

``<root><X.Y.Z>/`` holds ``cirros-<X.Y.Z>-<arch>-disk.img`` (qcow2 despite the name) for
x86_64, aarch64, arm and ppc64le, with the same release's kernel, initramfs, rootfs, lxc and
uec tarballs beside it (cirros ``bin/build-release``), MD5SUMS and SHA256SUMS (coreutils
lines; public records quote ``download.cirros-cloud.net/0.6.3/SHA256SUMS`` so). The root
also lists pre-release directories (``0.3.1~pre4/``), which are no release. A catalog
alias follows a release series (``version`` ``0.6``): a refresh moves it to the newest
``0.6.Z`` and never to another series. A release is never rebuilt.

Signatures: cirros ``doc/create-release.txt`` describes detached ``.asc`` signatures made
by hand, but no public record shows one beside a release's SHA256SUMS, so none is expected
(``signature`` is empty) until one does.
"""

from __future__ import annotations

import re

from .layout import Candidates, Context, Layout
from .snapshots import CIRROS, newest_first
from .upstream import Upstream


class CirrOS(Layout):
    distro = "cirros"
    title = "CirrOS"
    root = "https://download.cirros-cloud.net/"
    rule = CIRROS
    url = re.compile(
        r"(?P<root>.+/)(?P<snapshot>(?P<version>\d+\.\d+)\.\d+)/"
        r"cirros-(?P=snapshot)-(?P<arch>x86_64|aarch64|ppc64le)-disk\.img"
    )
    arches = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le"}
    shape = "<root><X.Y.Z>/cirros-<X.Y.Z>-<arch>-disk.img"
    sums_name = "SHA256SUMS"
    unsigned = True
    sums_note = "SHA256SUMS per release (coreutils); no signature published beside it"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        series = f"{ctx.version}."
        dirs = [d for d in up.listing(ctx.root).dirs if d.startswith(series)]
        return Candidates(ctx.root, newest_first(dirs, self.rule))

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{snapshot}/"


LAYOUT = CirrOS()
