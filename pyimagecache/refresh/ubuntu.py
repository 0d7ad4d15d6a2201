"""Ubuntu (cloud-images.ubuntu.com): ``release-YYYYMMDD[.N]`` directories, signed SHA256SUMS.

``<root><version>/`` redirects to ``<root><codename>/``, which lists ``release-YYYYMMDD[.N]/``
snapshots besides the moving ``release/`` and ``current/``. A snapshot holds
``ubuntu-<version>-server-cloudimg-<arch>.img`` (qcow2 despite the name) for amd64, arm64,
armhf, ppc64el, riscv64 and s390x, with ``-disk-kvm.img``, ``.squashfs``, ``.manifest`` and
others beside it, and SHA256SUMS (coreutils binary-mode lines) signed by SHA256SUMS.gpg (the
"UEC Image Automatic Signing Key"). Pins are built under the directory the redirect lands on.
"""

from __future__ import annotations

import re

from ..errors import RefreshError
from .layout import Candidates, Context, Layout
from .snapshots import UBUNTU, newest_first
from .upstream import Upstream


class Ubuntu(Layout):
    distro = "ubuntu"
    title = "Ubuntu"
    root = "https://cloud-images.ubuntu.com/releases/"
    rule = UBUNTU
    url = re.compile(
        r"(?P<root>.+/)(?P<codename>[a-z0-9.]+)/(?P<snapshot>[^/]+)/"
        r"ubuntu-(?P<version>\d+\.\d+)-server-cloudimg-(?P<arch>[a-z0-9]+)\.img"
    )
    arches = {
        "amd64": "amd64",
        "arm64": "arm64",
        "ppc64le": "ppc64el",
        "riscv64": "riscv64",
        "s390x": "s390x",
    }
    moving = frozenset({"release"})
    shape = "<root><codename>/release-<date>[.<n>]/ubuntu-<version>-server-cloudimg-<arch>.img"
    sums_name = "SHA256SUMS"
    signature = ".gpg"
    sums_note = "SHA256SUMS per snapshot (coreutils), detached SHA256SUMS.gpg"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        listing = up.listing(f"{ctx.root}{ctx.version}/")
        landed = listing.url.rstrip("/").rsplit("/", 1)[-1]
        if ctx.codename and landed not in (ctx.codename, ctx.version):
            raise RefreshError(
                f"{ctx.alias}: {ctx.root}{ctx.version}/ leads to {listing.url}, "
                f"not to the catalog's codename {ctx.codename!r}"
            )
        return Candidates(listing.url, newest_first(listing.dirs, self.rule))

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{ctx.codename or ctx.version}/{snapshot}/"


LAYOUT = Ubuntu()
