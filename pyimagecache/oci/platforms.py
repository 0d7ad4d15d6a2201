"""Which entry of an image index is for our machine.

Catalog arch keys are Go's GOARCH names, which are also OCI's ``platform.architecture``
values; podman's machine-os indexes spell two of them the kernel's way (``x86_64``,
``aarch64``), so those are accepted too. ``os`` must be ``linux`` or absent; a ``variant``
must be one this architecture runs (``v8`` for arm64).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

from ..arches import normalize_arch

#: Catalog arch key -> the ``architecture`` values that mean it.
ARCHITECTURES = {
    "amd64": ("amd64", "x86_64"),
    "arm64": ("arm64", "aarch64"),
    "riscv64": ("riscv64",),
    "ppc64le": ("ppc64le",),
    "s390x": ("s390x",),
}
#: Acceptable ``variant`` values per arch key ("" is no variant).
VARIANTS = {"arm64": ("", "v8")}


class Platform(NamedTuple):
    architecture: str
    os: str = ""
    variant: str = ""

    @classmethod
    def of(cls, value: Any) -> Optional[Platform]:
        """A descriptor's ``platform`` object (None when missing or not an object)."""
        if not isinstance(value, Mapping):
            return None
        fields = [value.get(k) for k in ("architecture", "os", "variant")]
        return cls(*(f if isinstance(f, str) else "" for f in fields))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os or "?", self.architecture or "?", self.variant) if p)


def arch_key(arch: Optional[str]) -> str:
    """The catalog key for ``arch`` (default: this machine's), as ensure reads it."""
    return normalize_arch(arch)


def matches(platform: Optional[Platform], arch: str) -> bool:
    """Whether an index entry's platform runs on ``arch`` (a catalog key)."""
    if platform is None:
        return False
    return (
        platform.architecture in ARCHITECTURES.get(arch, (arch,))
        and platform.os in ("", "linux")
        and platform.variant in VARIANTS.get(arch, ("",))
    )
