"""AlmaLinux (repo.almalinux.org): a directory per minor release, CHECKSUM per arch.

``<root><M.m>/cloud/<arch>/images/`` holds
``AlmaLinux-<M>-GenericCloud-<M.m>-<YYYYMMDD>[.n].<arch>.qcow2`` (9 has no ``.n``, 10 has)
beside the moving ``AlmaLinux-<M>-GenericCloud-latest.<arch>.qcow2``, ``GenericCloud-ext4``
and ``OpenNebula`` variants, and one CHECKSUM (coreutils lines, SHA-256) with its detached
signature CHECKSUM.asc (AlmaLinux's wiki, "Generic Cloud": the release's key signs it). The
major directory ``<root><M>/`` always holds the newest minor, so it is a moving pointer: pins
name the minor, and a refresh lists ``<root>`` for newer minors of the same major. Old minors
move to ``vault/<M.m>/`` with the same layout below it (a pin there derives that root).
"""

from __future__ import annotations

import re

from .layout import RPM_ARCHES, Context, Layout
from .snapshots import ALMALINUX


class AlmaLinux(Layout):
    distro = "almalinux"
    title = "AlmaLinux"
    root = "https://repo.almalinux.org/almalinux/"
    rule = ALMALINUX
    url = re.compile(
        r"(?P<root>.+/)(?P<minor>(?P<version>\d+)\.\d+)/cloud/(?P<arch>[a-z0-9_]+)/images/"
        r"AlmaLinux-(?P=version)-GenericCloud-(?P<snapshot>(?P=minor)-\d{8}(?:\.\d+)?)"
        r"\.(?P=arch)\.qcow2"
    )
    arches = RPM_ARCHES
    minor_dirs = True
    shape = (
        "<root><M.m>/cloud/<arch>/images/AlmaLinux-<M>-GenericCloud-<M.m>-<date>[.<n>].<arch>.qcow2"
    )
    sums_name = "CHECKSUM"
    signature = ".asc"
    sums_note = "CHECKSUM per arch directory (coreutils, SHA-256), detached CHECKSUM.asc"

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}{snapshot.split('-', 1)[0]}/cloud/{self.arches[arch]}/images/"


LAYOUT = AlmaLinux()
