"""Debian (cloud.debian.org): dated snapshot directories, SHA512SUMS.

``<root><codename>/`` lists snapshots ``YYYYMMDD-NNNN/`` (NNNN a build counter shared across
releases) besides the moving ``latest/`` and ``daily/``. A snapshot holds, per arch and
variant, ``debian-<version>-<variant>-<arch>-<snapshot>.{qcow2,raw,tar.xz,json}`` and one
SHA512SUMS (coreutils lines, SHA-512 only; upstream publishes no signature for it), so Debian
pins are SHA-512 and a refresh reads one small file per snapshot, never an image.

The variant is kept from the pin: ``genericcloud`` (cloud hypervisors only, no hardware
drivers: the smallest) for amd64 and arm64, ``generic`` for ppc64el and riscv64, which have no
``genericcloud`` build, as lima pins them. qcow2, not raw: the same disk, a fraction of the
download.
"""

from __future__ import annotations

import re

from .layout import Candidates, Context, Layout
from .snapshots import DEBIAN
from .upstream import Upstream


class Debian(Layout):
    distro = "debian"
    title = "Debian"
    root = "https://cloud.debian.org/images/cloud/"
    rule = DEBIAN
    url = re.compile(
        r"(?P<root>.+/)(?P<codename>[a-z]+)/(?P<snapshot>[^/]+)/"
        r"debian-(?P<version>\d+)-(?P<variant>[a-z]+)-(?P<arch>[a-z0-9]+)-(?P=snapshot)\.qcow2"
    )
    arches = {"amd64": "amd64", "arm64": "arm64", "ppc64le": "ppc64el", "riscv64": "riscv64"}
    keep = ("variant",)
    needs_codename = True
    shape = "<root><codename>/<snapshot>/debian-<version>-<variant>-<arch>-<snapshot>.qcow2"
    sums_name = "SHA512SUMS"
    sums_algorithm = "sha512"
    sums_note = "SHA512SUMS per snapshot (coreutils, SHA-512; not signed upstream)"
    unsigned = True

    def default(self, arch: str, group: str) -> str:
        return "genericcloud" if arch in ("amd64", "arm64") else "generic"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        return self.dir_candidates(up, f"{ctx.root}{ctx.codename}/")

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{ctx.codename}/{snapshot}/"


LAYOUT = Debian()
