"""Alpine Linux (dl-cdn.alpinelinux.org): cloud images per release, bare ``.sha512`` sidecars.

``<root>v<M.m>/releases/cloud/`` (``latest-stable/`` is the moving alias) holds
``<vendor>_alpine-<X.Y.Z>-<arch>-<firmware>-<bootstrap>[-<machine>]-r<rev>.qcow2`` for
vendors ``nocloud``, ``generic`` and others, firmware ``bios``/``uefi`` (aarch64 is uefi
only) and bootstrap ``cloudinit``/``tiny``. Each image has ``<file>.sha512`` holding the bare
SHA-512 and nothing else, unsigned (alpine-cloud-images signs the image itself,
``<file>.asc``, which a refresh never downloads). A bump keeps the pin's vendor, firmware,
bootstrap and machine; new pins default to ``nocloud``, ``uefi``, ``cloudinit``.
"""

from __future__ import annotations

import re

from .layout import Context, Layout
from .snapshots import ALPINE

_DEFAULTS = {"vendor": "nocloud", "firmware": "uefi", "bootstrap": "cloudinit", "machine": ""}


class Alpine(Layout):
    distro = "alpine"
    title = "Alpine Linux"
    root = "https://dl-cdn.alpinelinux.org/alpine/"
    rule = ALPINE
    url = re.compile(
        r"(?P<root>.+/)v(?P<version>\d+\.\d+)/releases/cloud/"
        r"(?P<vendor>[a-z]+)_alpine-(?P<release>(?P=version)\.\d+)-(?P<arch>x86_64|aarch64)"
        r"-(?P<firmware>bios|uefi)-(?P<bootstrap>cloudinit|tiny)(?:-(?P<machine>metal|vm))?"
        r"-r(?P<rev>\d+)\.qcow2"
    )
    arches = {"amd64": "x86_64", "arm64": "aarch64"}
    keep = tuple(_DEFAULTS)
    shape = (
        "<root>v<M.m>/releases/cloud/"
        "<vendor>_alpine-<X.Y.Z>-<arch>-<firmware>-<bootstrap>-r<rev>.qcow2"
    )
    sums_name = "{image}.sha512"
    sums_format = "bare"
    sums_algorithm = "sha512"
    sums_note = "<image>.sha512 (the bare SHA-512); no signature"
    unsigned = True

    def url_snapshot(self, m: re.Match[str]) -> str:
        return f"{m.group('release')}-r{m.group('rev')}"

    def default(self, arch: str, group: str) -> str:
        return _DEFAULTS[group]

    def image_dir(self, ctx: Context, snapshot: str, arch: str) -> str:
        return f"{ctx.root}v{ctx.version}/releases/cloud/"


LAYOUT = Alpine()
