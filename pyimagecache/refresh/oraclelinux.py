"""Oracle Linux (yum.oracle.com): a template JSON per major release and arch.

``<root>ol<M>-template.json`` (x86_64) and ``<root>ol<M>_aarch64-cloud-template.json`` name
the current KVM image and its SHA-256 (``base_url``, ``kvm.image``, ``kvm.sha256``; not
signed). Images live at ``<root>OL<M>/u<m>/<arch>/OL<M>U<m>_<arch>-kvm[-cloud]-b<build>.qcow2``
(aarch64's with ``-cloud``), and Oracle keeps earlier updates' images. Build numbers are per
arch, so every arch is resolved on its own and has its own snapshot ``OL<M>U<m>-b<build>``.
Only x86_64 and aarch64 are built.
"""

from __future__ import annotations

import re
from typing import Dict, Union

from .layout import Candidates, Context, Layout, Located, SumsSource
from .snapshots import ORACLELINUX
from .upstream import Upstream


class OracleLinux(Layout):
    distro = "oraclelinux"
    title = "Oracle Linux"
    root = "https://yum.oracle.com/templates/OracleLinux/"
    rule = ORACLELINUX
    url = re.compile(
        r"(?P<root>.+/)OL(?P<version>\d+)/u(?P<update>\d+)/(?P<arch>x86_64|aarch64)/"
        r"OL(?P=version)U(?P=update)_(?P=arch)-kvm(?P<cloud>-cloud)?-b(?P<build>\d+)\.qcow2"
    )
    arches = {"amd64": "x86_64", "arm64": "aarch64"}
    per_arch = True
    keep = ("cloud",)
    shape = "<root>OL<M>/u<m>/<arch>/OL<M>U<m>_<arch>-kvm[-cloud]-b<build>.qcow2"
    sums_note = "ol<M>[_aarch64-cloud]-template.json (kvm.sha256); not signed upstream"
    unsigned = True

    def url_snapshot(self, m: re.Match[str]) -> str:
        return f"OL{m.group('version')}U{m.group('update')}-b{m.group('build')}"

    def default(self, arch: str, group: str) -> str:
        return "-cloud" if arch == "arm64" else ""

    def manifest(self, ctx: Context, arch: str) -> SumsSource:
        spelling = self.arches[arch]
        suffix = "" if spelling == "x86_64" else f"_{spelling}"
        name = f"ol{ctx.version}{suffix}{self.hint(ctx, arch, 'cloud')}-template.json"
        return SumsSource(ctx.root + name, "oracle-template")

    def offered(self, up: Upstream, ctx: Context, arch: str) -> Dict[str, Located]:
        """snapshot -> image of what the manifest names (one image: the current build)."""
        source = self.manifest(ctx, arch)
        found: Dict[str, Located] = {}
        for image in up.checksums(source, "").digests:
            update = re.match(r"OL\d+U(\d+)_", image)
            url = f"{ctx.root}OL{ctx.version}/u{update.group(1) if update else ''}/"
            m = self.match(f"{url}{self.arches[arch]}/{image}")
            if m is not None and m.group("arch") == self.arches[arch]:
                found[self.url_snapshot(m)] = Located(m.group(0), source)
        return found

    def candidates(self, up: Upstream, ctx: Context, arch: str) -> Candidates:
        return Candidates(self.manifest(ctx, arch).url, list(self.offered(up, ctx, arch)))

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        m = self.rule.pattern.fullmatch(snapshot)
        return f"{ctx.root}OL{ctx.version}/u{m.group(2) if m else ''}/{self.arches[arch]}/"

    def sums_source(self, ctx: Context, image_url: str, arch: str) -> SumsSource:
        return self.manifest(ctx, arch)

    def locate(self, up: Upstream, ctx: Context, snapshot: str, arch: str) -> Union[Located, str]:
        """The manifest names one image: this snapshot's, or the snapshot is not offered."""
        found = self.offered(up, ctx, arch).get(snapshot)
        return found or f"{self.manifest(ctx, arch).url} does not name {snapshot}"


LAYOUT = OracleLinux()
