"""JSON decoding without importing :mod:`json`, for the paths that start-up time decides.

``import json`` compiles regular expressions at import (it imports :mod:`re`), which costs more
than a cache hit's whole work. The decoder itself is C (``_json.make_scanner``); given the few
settings it reads from its context, it parses exactly as :func:`json.loads` does. Where
``_json`` is missing (another Python implementation), :func:`json.loads` is used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple

_WHITESPACE = " \t\n\r"


class _Context:
    """What the C scanner reads from a JSONDecoder (json.loads's defaults)."""

    strict = True
    object_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.get

    def __init__(self, object_pairs_hook: Optional[Callable[[List[Tuple[str, Any]]], Any]]):
        self.object_pairs_hook = object_pairs_hook
        self.memo: dict = {}  # type: ignore[type-arg]


def loads(
    text: str, object_pairs_hook: Optional[Callable[[List[Tuple[str, Any]]], Any]] = None
) -> Any:
    """:func:`json.loads` of ``text``; a ValueError (``json.JSONDecodeError``) when it is not
    one JSON document.

    >>> loads(' {"a": [1, 2.5, null, true]} ')
    {'a': [1, 2.5, None, True]}
    >>> loads('{"a": 1} x')
    Traceback (most recent call last):
    ...
    ValueError: extra data after the JSON document at character 8
    """
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - CPython always has it
        import json

        return json.loads(text, object_pairs_hook=object_pairs_hook)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        scanner = make_scanner(_Context(object_pairs_hook))  # type: ignore[arg-type]
        value, end = scanner(text, start)
    except StopIteration as exc:  # no value where one must start
        raise ValueError(f"expected a JSON value at character {exc.value}") from None
    rest = text[end:]
    if rest.strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON document at character {end}")
    return value
