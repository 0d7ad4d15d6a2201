"""Every family the refresher and ``catalog check`` know, by the ``distro`` catalog field."""

from __future__ import annotations

from typing import Dict

from . import (
    almalinux,
    almalinux_kitten,
    alpine,
    amazonlinux,
    archlinux,
    centos_stream,
    cirros,
    debian,
    fedora,
    freebsd,
    opensuse_leap,
    opensuse_tumbleweed,
    oraclelinux,
    rocky,
    ubuntu,
)
from .layout import Layout

FAMILIES: Dict[str, Layout] = {
    m.LAYOUT.distro: m.LAYOUT
    for m in (
        debian,
        ubuntu,
        fedora,
        centos_stream,
        almalinux,
        rocky,
        oraclelinux,
        opensuse_leap,
        alpine,
        archlinux,
        amazonlinux,
        freebsd,
        almalinux_kitten,
        opensuse_tumbleweed,
        cirros,
    )
}
