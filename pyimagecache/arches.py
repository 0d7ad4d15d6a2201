"""Architecture names: the catalog's keys, and this machine's in that spelling.

Imported by a cache hit, so nothing here imports more than :mod:`os`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

#: Architecture keys, as Go's GOARCH spells them (the origin of the schema).
ARCHES = ("amd64", "arm64", "riscv64", "ppc64le", "s390x")

#: ``platform.machine()`` spellings (Linux, macOS, the BSDs) -> arch key.
MACHINE_TO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8": "arm64",
    "armv8l": "arm64",
    "riscv64": "riscv64",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",  # Debian's and Ubuntu's spelling
    "powerpc64le": "ppc64le",
    "s390x": "s390x",
}


def machine() -> str:
    """This machine's architecture as the OS names it (``uname -m``)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().machine)
    import platform  # pragma: no cover - not POSIX

    return platform.machine()


def normalize_arch(name: Optional[str] = None) -> str:
    """This machine's architecture (or ``name``) as a catalog arch key: x86_64/AMD64 ->
    amd64, aarch64/arm64 -> arm64. Anything else comes back lower-cased, for the error to
    name.

    >>> normalize_arch("x86_64"), normalize_arch("AArch64"), normalize_arch("sparc")
    ('amd64', 'arm64', 'sparc')
    """
    key = (machine() if name is None else name).strip().lower()
    return MACHINE_TO_ARCH.get(key, key)
