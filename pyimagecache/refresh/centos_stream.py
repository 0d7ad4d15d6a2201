"""CentOS Stream (cloud.centos.org): dated composes in one directory per arch.

``<root><N>-stream/<arch>/images/`` (an Apache index) holds
``CentOS-Stream-GenericCloud-<N>-<YYYYMMDD>.<n>.<arch>.qcow2`` for every compose, beside the
moving ``CentOS-Stream-GenericCloud-<N>-latest.<arch>.qcow2``, an x86_64-specific
``GenericCloud-x86_64-`` variant, ``ec2`` and container images. Each image has a
``<file>.SHA256SUM`` sidecar (BSD line, SHA-256; not signed upstream).
"""

from __future__ import annotations

import re

from .layout import RPM_ARCHES, Context, Layout
from .snapshots import CENTOS_STREAM


class CentOSStream(Layout):
    distro = "centos-stream"
    title = "CentOS Stream"
    root = "https://cloud.centos.org/centos/"
    rule = CENTOS_STREAM
    url = re.compile(
        r"(?P<root>.+/)(?P<version>\d+)-stream/(?P<arch>[a-z0-9_]+)/images/"
        r"CentOS-Stream-GenericCloud-(?P=version)-(?P<snapshot>\d{8}\.\d+)\.(?P=arch)\.qcow2"
    )
    arches = RPM_ARCHES
    shape = "<root><N>-stream/<arch>/images/CentOS-Stream-GenericCloud-<N>-<date>.<n>.<arch>.qcow2"
    sums_name = "{image}.SHA256SUM"
    sums_format = "bsd"
    sums_note = "<image>.SHA256SUM (BSD line); not signed upstream"
    unsigned = True

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{ctx.version}-stream/{self.arches[arch]}/images/"


LAYOUT = CentOSStream()
