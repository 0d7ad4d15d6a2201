"""Rocky Linux (dl.rockylinux.org): a directory per minor release, a sidecar per image.

``<root><M.m>/images/<arch>/`` holds
``Rocky-<M>-GenericCloud-Base-<M.m>-<YYYYMMDD>.<n>.<arch>.qcow2`` beside the moving
``Rocky-<M>-GenericCloud-Base.latest.<arch>.qcow2``, ``GenericCloud-LVM`` and ``EC2-Base``
variants; each image has ``<file>.CHECKSUM`` (BSD line, SHA-256, sometimes repeated; not
signed upstream). ``<root><M>/`` is a symlink to the newest minor, a moving pointer: pins name
the minor and a refresh lists ``<root>`` for newer minors of the same major.
"""

from __future__ import annotations

import re

from .layout import Candidates, Context, Layout, SumsSource
from .snapshots import ROCKY
from .upstream import Upstream


class Rocky(Layout):
    distro = "rocky"
    title = "Rocky Linux"
    root = "https://dl.rockylinux.org/pub/rocky/"
    rule = ROCKY
    url = re.compile(
        r"(?P<root>.+/)(?P<minor>(?P<version>\d+)\.\d+)/images/(?P<arch>[a-z0-9_]+)/"
        r"Rocky-(?P=version)-GenericCloud-Base-(?P<snapshot>(?P=minor)-\d{8}\.\d+)"
        r"\.(?P=arch)\.qcow2"
    )
    arches = {"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}
    shape = "<root><M.m>/images/<arch>/Rocky-<M>-GenericCloud-Base-<M.m>-<date>.<n>.<arch>.qcow2"
    sums_note = "<image>.CHECKSUM (BSD line); not signed upstream"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        return self.minor_candidates(up, ctx, arch)

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{snapshot.split('-', 1)[0]}/images/{self.arches[arch]}/"

    def sums_source(self, ctx: Context, image_url: str, arch: str) -> SumsSource:
        return SumsSource(image_url + ".CHECKSUM", "bsd")


LAYOUT = Rocky()
