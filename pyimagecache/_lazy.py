"""Lazy public names for a package: each imported from its module on first use, so that
importing the package (and every CLI run) pays only for what is used."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Mapping, MutableMapping, Tuple


def lazy_names(
    package: str, table: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``table`` maps a public name to the
    submodule defining it; a name once imported is kept in ``namespace`` (the package's
    globals), so later lookups cost nothing."""

    def getattr_(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def dir_() -> List[str]:
        return sorted(set(namespace) | set(table))

    return getattr_, dir_


__all__ = ["lazy_names"]
