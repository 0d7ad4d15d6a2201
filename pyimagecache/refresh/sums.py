"""Upstream checksum files, one parser per format and one entry point, :func:`parse_checksums`.

Formats (``fmt``):

``coreutils``
    ``<hex>  <file>`` (text), ``<hex> *<file>`` (binary), and ``<hex> <file>`` as openSUSE's
    older sidecars have it: Debian's SHA512SUMS, Ubuntu's and Amazon Linux's SHA256SUMS,
    AlmaLinux's CHECKSUM, openSUSE's ``<file>.sha256``, Arch Linux's ``<file>.SHA256``.
    The algorithm is the file's (its name says it), not the line's.
``bsd``
    ``SHA256 (<file>) = <hex>``, with ``# <file>: <n> bytes`` comments: Fedora's and CentOS
    Stream's CHECKSUM and ``.SHA256SUM``, Rocky Linux's ``.CHECKSUM``, FreeBSD's
    CHECKSUM.SHA256. Lines of algorithms not pinned (MD5, SHA1, SHA384) are skipped.
``bare``
    one digest and nothing else (Alpine's ``<file>.sha512``); it names the file ``name``.
``oracle-template``
    Oracle Linux's template JSON, ``{"base_url": ..., "kvm": {"image": ..., "sha256": ...}}``.

A body that is PGP clear-signed (Fedora's CHECKSUM) is parsed from its signed text only:
anything outside the armour is refused, never read. Whether that signature was checked is
the caller's business (:mod:`.upstream`); this module never says a file is verified.

Any line that is neither blank, a comment nor in the format is an error naming the file and
line: a truncated file or an HTML error page must never read as "no checksum for this file".
"""

from __future__ import annotations

import json
import re
from typing import Callable, Dict, Iterator, Mapping, NamedTuple, Optional, Tuple

from ..errors import RefreshError
from ..hashing import HEX_DIGITS, Expected

FORMATS = ("coreutils", "bsd", "bare", "oracle-template")

_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
_END = "-----END PGP SIGNATURE-----"


class Sums(NamedTuple):
    """A parsed checksum file: file name -> the digests it publishes for it."""

    url: str
    digests: Mapping[str, Expected]
    #: The file was PGP clear-signed (its digests come from the signed text only).
    clearsigned: bool = False
    #: A signature over it (detached or clear) was checked with gpgv against a keyring.
    verified: bool = False


def is_clearsigned(body: bytes) -> bool:
    """Whether ``body`` holds a PGP clear-signed message (anywhere: text around it is then
    refused by :func:`signed_text`, never parsed as if signed)."""
    return any(line.rstrip(b"\r") == _BEGIN.encode() for line in body.splitlines())


def signed_text(text: str, *, url: str) -> str:
    """The signed text inside a clear-signed message, dash-escaping undone (RFC 4880 7.1).

    Exactly one armoured block, with nothing but blank lines around it; otherwise an error
    (unsigned lines appended after the signature must not be read as if signed).

    >>> signed_text("-----BEGIN PGP SIGNED MESSAGE-----\\nHash: SHA256\\n\\nx\\n- -y\\n"
    ...             "-----BEGIN PGP SIGNATURE-----\\nabc\\n-----END PGP SIGNATURE-----\\n", url="C")
    'x\\n-y\\n'
    """
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or lines[0].rstrip() != _BEGIN or lines[-1].rstrip() != _END:
        raise RefreshError(f"{url}: not one clear-signed message (text outside the armour)")
    at = 1
    while at < len(lines) and lines[at].strip():  # armour headers: "Hash: SHA256"
        if ":" not in lines[at]:
            raise RefreshError(f"{url}: malformed clear-signed header {lines[at][:60]!r}")
        at += 1
    try:
        end = lines.index(_SIGNATURE, at)
    except ValueError:
        raise RefreshError(f"{url}: clear-signed message has no signature block") from None
    body = lines[at + 1 : end]
    if _BEGIN in lines[end:] or _SIGNATURE in lines[end + 1 :]:
        raise RefreshError(f"{url}: more than one clear-signed message")
    return "".join((line[2:] if line.startswith("- ") else line) + "\n" for line in body)


def _lines(text: str) -> Iterator[Tuple[int, str]]:
    """(number, line) of every line that is not blank or a ``#`` comment."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


class _Collector:
    """File name -> Expected, refusing one file listed twice with different digests."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.found: Dict[str, Dict[str, str]] = {}

    def add(self, number: int, name: str, algorithm: str, digest: str) -> None:
        have = self.found.setdefault(name, {})
        if have.get(algorithm, digest.lower()) != digest.lower():
            raise RefreshError(f"{self.url} line {number}: {name} listed twice with different sums")
        have[algorithm] = digest.lower()

    def done(self) -> Dict[str, Expected]:
        if not self.found:
            raise RefreshError(f"{self.url}: no checksum lines")
        return {name: Expected(d.get("sha256"), d.get("sha512")) for name, d in self.found.items()}


def _hex(algorithm: str) -> str:
    return f"[0-9A-Fa-f]{{{HEX_DIGITS[algorithm]}}}"


def parse_coreutils(text: str, algorithm: str, url: str) -> Dict[str, Expected]:
    """``<hex>  <file>``, ``<hex> *<file>`` or ``<hex> <file>`` lines."""
    line_re = re.compile(rf"({_hex(algorithm)})(?: [ *]| )(\S.*)")
    out = _Collector(url)
    for number, line in _lines(text):
        m = line_re.fullmatch(line)
        if m is None:
            raise RefreshError(
                f"{url} line {number}: expected '<{HEX_DIGITS[algorithm]} hex digits> <file>' "
                f"({algorithm.upper()}), got {line[:80]!r}"
            )
        out.add(number, m.group(2), algorithm, m.group(1))
    return out.done()


_BSD = re.compile(r"(MD5|SHA1|SHA224|SHA256|SHA384|SHA512) \((.+)\) = ([0-9A-Fa-f]+)")


def parse_bsd(text: str, url: str) -> Dict[str, Expected]:
    """``SHA256 (<file>) = <hex>`` lines (``# <file>: <n> bytes`` comments skipped)."""
    out = _Collector(url)
    for number, line in _lines(text):
        m = _BSD.fullmatch(line.strip())
        if m is None:
            raise RefreshError(
                f"{url} line {number}: expected 'SHA256 (<file>) = <hex>', got {line[:80]!r}"
            )
        algorithm, name, digest = m.group(1).lower(), m.group(2), m.group(3)
        if algorithm not in HEX_DIGITS:
            continue
        if len(digest) != HEX_DIGITS[algorithm]:
            raise RefreshError(
                f"{url} line {number}: {algorithm.upper()} of {name} must be "
                f"{HEX_DIGITS[algorithm]} hex digits, got {len(digest)}"
            )
        out.add(number, name, algorithm, digest)
    return out.done()


def parse_bare(text: str, algorithm: str, name: str, url: str) -> Dict[str, Expected]:
    """One digest, alone on its line (or followed by ``name`` itself), for ``name``."""
    lines = list(_lines(text))
    m = (
        re.fullmatch(rf"({_hex(algorithm)})(?:\s+\*?(\S+))?", lines[0][1].strip())
        if lines
        else None
    )
    if len(lines) != 1 or m is None or m.group(2) not in (None, name):
        got = lines[0][1][:80] if lines else text[:40]
        raise RefreshError(
            f"{url}: expected the {algorithm.upper()} of {name} alone "
            f"({HEX_DIGITS[algorithm]} hex digits), got {got!r}"
        )
    out = _Collector(url)
    out.add(lines[0][0], name, algorithm, m.group(1))
    return out.done()


def parse_oracle_template(text: str, url: str) -> Dict[str, Expected]:
    """Oracle Linux's template JSON: the KVM image's name and SHA-256."""
    try:
        doc = json.loads(text)
        image, digest = doc["kvm"]["image"], doc["kvm"]["sha256"]
        if not isinstance(image, str) or not isinstance(digest, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RefreshError(
            f"{url}: expected Oracle's template JSON with kvm.image and kvm.sha256"
        ) from None
    if not re.fullmatch(_hex("sha256"), digest) or "/" in image or not image:
        raise RefreshError(f"{url}: kvm.image {image!r} / kvm.sha256 {digest!r} malformed")
    out = _Collector(url)
    out.add(1, image, "sha256", digest)
    return out.done()


_PARSERS: Dict[str, Callable[[str, str, str, str], Dict[str, Expected]]] = {
    "coreutils": lambda text, algorithm, name, url: parse_coreutils(text, algorithm, url),
    "bsd": lambda text, algorithm, name, url: parse_bsd(text, url),
    "bare": parse_bare,
    "oracle-template": lambda text, algorithm, name, url: parse_oracle_template(text, url),
}


def decode(body: bytes, url: str) -> Tuple[str, bool]:
    """(the text to parse, whether it was clear-signed)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefreshError(f"{url}: not UTF-8 text (byte {exc.start})") from None
    if is_clearsigned(body):
        return signed_text(text, url=url), True
    return text, False


def parse_checksums(
    body: bytes,
    fmt: str,
    *,
    url: str = "checksum file",
    algorithm: str = "sha256",
    name: str = "",
    signed: Optional[str] = None,
) -> Sums:
    """The digests a checksum file publishes, in format ``fmt`` (see the module docstring).

    ``algorithm`` is the file's for ``coreutils`` and ``bare``; ``name`` is the file a
    ``bare`` sidecar is for. A clear-signed body is read from its signed text; ``signed`` is
    that text as gpgv output it after checking the signature (then it is what gets parsed,
    and the result says ``verified``).

    >>> parse_checksums(b"SHA256 (a.qcow2) = " + b"ab" * 32, "bsd").digests["a.qcow2"].sha256[:4]
    'abab'
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise ValueError(f"unknown checksum format {fmt!r} (known: {', '.join(FORMATS)})")
    if algorithm not in HEX_DIGITS:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    text, clear = decode(body, url)
    if signed is not None:
        text = signed
    return Sums(url, parser(text, algorithm, name, url), clear, verified=signed is not None)


def parse_sums(body: bytes, algorithm: str, *, url: str = "checksum file") -> Dict[str, str]:
    """A coreutils sums file as file name -> lowercase hex (the older entry point).

    >>> parse_sums(b"%s *disk.img\\n" % (b"AB" * 32), "sha256")
    {'disk.img': 'abababababababababababababababababababababababababababababababab'}
    """
    digests = parse_checksums(body, "coreutils", url=url, algorithm=algorithm).digests
    return {name: str(getattr(expected, algorithm)) for name, expected in digests.items()}
