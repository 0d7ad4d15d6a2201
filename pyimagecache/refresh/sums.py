"""Checksum files as coreutils writes them: ``<hex>  <file>`` (text) or ``<hex> *<file>`` (binary).

Debian publishes SHA512SUMS, Ubuntu SHA256SUMS. A line that is neither blank nor in this shape is
an error naming the file and line: a truncated or HTML error page must never be read as "no
checksum for this file".
"""

from __future__ import annotations

import re
from typing import Dict

from ..errors import RefreshError

_HEX_DIGITS = {"sha256": 64, "sha512": 128}


def parse_sums(body: bytes, algorithm: str, *, url: str = "checksum file") -> Dict[str, str]:
    """File name -> lowercase hex digest.

    >>> parse_sums(b"%s *disk.img\\n" % (b"AB" * 32), "sha256")
    {'disk.img': 'abababababababababababababababababababababababababababababababab'}
    """
    digits = _HEX_DIGITS[algorithm]
    line_re = re.compile(rf"([0-9A-Fa-f]{{{digits}}}) [ *](\S.*)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefreshError(f"{url}: not UTF-8 text (byte {exc.start})") from None
    sums: Dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = line_re.fullmatch(line.rstrip("\r"))
        if m is None:
            raise RefreshError(
                f"{url} line {number}: expected '<{digits} hex digits> <file>' "
                f"({algorithm.upper()}), got {line[:80]!r}"
            )
        digest, name = m.group(1).lower(), m.group(2)
        if sums.get(name, digest) != digest:
            raise RefreshError(f"{url} line {number}: {name} listed twice with different sums")
        sums[name] = digest
    if not sums:
        raise RefreshError(f"{url}: no checksum lines")
    return sums
