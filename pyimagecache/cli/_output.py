"""What the commands print: byte counts for humans, and aligned tables."""

from __future__ import annotations

from typing import List


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, for people.

    >>> human_bytes(1536), human_bytes(10)
    ('1.5 KiB', '10 B')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def print_table(rows: List[List[str]]) -> None:
    """Left-aligned columns, two spaces apart, no trailing blanks."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
