"""Rocky Linux (dl.rockylinux.org): a directory per minor release, a sidecar per image.

``<root><M.m>/images/<arch>/`` holds
``Rocky-<M>-GenericCloud-Base-<M.m>-<YYYYMMDD>.<n>.<arch>.qcow2`` beside the moving
``Rocky-<M>-GenericCloud-Base.latest.<arch>.qcow2``, ``GenericCloud-LVM`` and ``EC2-Base``
variants; each image has ``<file>.CHECKSUM`` (BSD line, SHA-256, sometimes repeated; not
signed upstream: Rocky publishes signed commits of its checksums in rocky-linux/checksums
instead, per sig-core-toolkit's README template). ``<root><M>/`` is a symlink to the newest
minor, a moving pointer: pins name the minor and a refresh lists ``<root>`` for newer minors
of the same major.
"""

from __future__ import annotations

import re

from .layout import RPM_ARCHES, Context, Layout
from .snapshots import ROCKY


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
    arches = RPM_ARCHES
    minor_dirs = True
    shape = "<root><M.m>/images/<arch>/Rocky-<M>-GenericCloud-Base-<M.m>-<date>.<n>.<arch>.qcow2"
    sums_name = "{image}.CHECKSUM"
    sums_format = "bsd"
    sums_note = "<image>.CHECKSUM (BSD line); not signed upstream"
    unsigned = True

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{snapshot.split('-', 1)[0]}/images/{self.arches[arch]}/"


LAYOUT = Rocky()
