"""Amazon Linux 2023 (cdn.amazonlinux.com): a directory per release version.

``<root>al2023/os-images/`` lists versions ``2023.<minor>.<YYYYMMDD>.<n>/`` besides the moving
``latest/``; each has ``kvm/`` (x86_64) and ``kvm-arm64/``, holding
``al2023-kvm-<version>-kernel-<k>-<x86_64|arm64>.xfs.gpt.qcow2`` and a SHA256SUMS (coreutils;
no signature found). A bump keeps the pin's kernel line (6.1). arm64 is optional: upstream
builds it in ``kvm-arm64/`` with its own SHA256SUMS, and no public record of its digest for
the pinned version was found, so the alias pins amd64 alone until a refresh can add it.
"""

from __future__ import annotations

import re

from .layout import ARM64_OPTIONAL, Candidates, Context, Layout
from .snapshots import AMAZONLINUX
from .upstream import Upstream

_KVM = {"amd64": "kvm", "arm64": "kvm-arm64"}


class AmazonLinux(Layout):
    distro = "amazonlinux"
    title = "Amazon Linux"
    root = "https://cdn.amazonlinux.com/"
    rule = AMAZONLINUX
    url = re.compile(
        r"(?P<root>.+/)al(?P<version>\d{4})/os-images/(?P<snapshot>(?P=version)\.\d+\.\d{8}\.\d+)/"
        r"(?P<kvm>kvm|kvm-arm64)/al(?P=version)-kvm-(?P=snapshot)-kernel-(?P<kernel>\d+\.\d+)"
        r"-(?P<arch>x86_64|arm64)\.xfs\.gpt\.qcow2"
    )
    arches = {"amd64": "x86_64", "arm64": "arm64"}
    arm64 = ARM64_OPTIONAL
    keep = ("kernel",)
    shape = (
        "<root>al2023/os-images/<version>/kvm[-arm64]/"
        "al2023-kvm-<version>-kernel-<k>-<arch>.xfs.gpt.qcow2"
    )
    sums_name = "SHA256SUMS"
    sums_note = "SHA256SUMS per kvm*/ directory (coreutils); no signature"
    unsigned = True

    def default(self, arch: str, group: str) -> str:
        return "6.1"

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        return self.dir_candidates(up, f"{ctx.root}al{ctx.version}/os-images/")

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}al{ctx.version}/os-images/{snapshot}/{_KVM[arch]}/"


LAYOUT = AmazonLinux()
