"""One refresh run's view of the upstream servers: listings, checksum files, signatures.

All network access goes through the project's downloader (timeouts, retries, proxies, CA
bundle); this module adds the size bounds, the parsing, a per-run cache (Debian's SHA512SUMS
serves every arch of a snapshot) and the signature checks on top. Nothing here downloads an
image: every digest comes from a checksum file upstream publishes.

Signatures: with a keyring, a detached signature (``SHA256SUMS.gpg``, ``.sha256.asc``,
``.SHA256.sig``) or a clear signature (Fedora's CHECKSUM) is checked with gpgv, and a family
that signs but whose file carries no signature fails. Without a keyring, nothing counts as
verified, a clear-signed file included: its armour is stripped and the signed text parsed, and
the log says that the signature was not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import DownloadError, RefreshError
from ..settings import Settings
from .layout import SumsSource
from .listing import Listing, parse_listing
from .signatures import verify_clearsigned, verify_detached
from .sums import Sums, is_clearsigned, parse_checksums

# An index page of a few hundred snapshots is ~100 KiB; sums files are a few KiB.
MAX_LISTING_BYTES = 8 << 20
MAX_SUMS_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 256 << 10
#: The HTTP statuses that mean "not there (any more)".
GONE = (404, 410)

#: Called with a line of news for the user (``resolved ...``, ``fallback ...``).
Log = Callable[[str], None]


@dataclass
class Upstream:
    """Fetching and checking helpers shared by every family's resolver."""

    keyring: Optional[Path] = None
    log: Log = print
    #: Extra keyword arguments for the downloader (timeout=, retries=).
    network: Dict[str, Any] = field(default_factory=dict)
    settings: Optional[Settings] = None
    _listings: Dict[str, Optional[Listing]] = field(default_factory=dict, repr=False)
    _sums: Dict[Tuple[str, str], Sums] = field(default_factory=dict, repr=False)

    def get(self, url: str, max_bytes: int) -> Tuple[str, str, bytes]:
        """(final URL after redirects, content type, body)."""
        from ..download import read_url

        fetched = read_url(url, max_bytes=max_bytes, settings=self.settings, **self.network)
        content_type = str(fetched.headers.get("Content-Type", "") or "")
        return fetched.url, content_type, fetched.data

    def listing(self, url: str) -> Listing:
        """The directory index at ``url``; a missing one is an error."""
        got = self.listing_or_none(url)
        if got is None:
            raise RefreshError(f"{url}: no such directory upstream (HTTP 404)")
        return got

    def listing_or_none(self, url: str) -> Optional[Listing]:
        """The directory index at ``url``, or None when the server says it is not there."""
        if url not in self._listings:
            try:
                final, content_type, body = self.get(url, MAX_LISTING_BYTES)
            except DownloadError as exc:
                if exc.status not in GONE:
                    raise
                self._listings[url] = None
            else:
                self._listings[url] = parse_listing(body, final, content_type)
        return self._listings[url]

    def checksums(self, source: SumsSource, name: str) -> Sums:
        """The checksum file ``source`` parsed (for ``name``, which a bare sidecar is about),
        its signature checked first when a keyring is set."""
        key = (source.url, name if source.fmt == "bare" else "")  # only a bare sidecar needs it
        cached = self._sums.get(key)
        if cached is not None:
            return cached
        _, _, body = self.get(source.url, MAX_SUMS_BYTES)
        signed: Optional[str] = None
        if self.keyring is not None:
            signed = self._verify(source, body)
        sums = parse_checksums(
            body, source.fmt, url=source.url, algorithm=source.algorithm, name=name, signed=signed
        )
        if self.keyring is None and sums.clearsigned:
            self.log(
                f"unverified {source.url}: clear-signed, but no --keyring was given, "
                "so its signature was NOT checked"
            )
        elif self.keyring is not None and not sums.verified:
            self.log(
                f"unverified {source.url}: upstream does not sign it; the keyring checked nothing"
            )
        self._sums[key] = sums
        return sums

    def _verify(self, source: SumsSource, body: bytes) -> Optional[str]:
        """The text gpgv verified (a detached signature: the body itself), or None when
        upstream signs nothing here. RefreshError for a bad or missing signature."""
        assert self.keyring is not None
        if source.signature:
            _, _, signature = self.get(source.signature, MAX_SIGNATURE_BYTES)
            verify_detached(body, signature, self.keyring, what=source.url)
            self.log(f"verified {source.url}: good signature in {source.signature}")
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RefreshError(f"{source.url}: not UTF-8 text (byte {exc.start})") from None
        if is_clearsigned(body):
            text = verify_clearsigned(body, self.keyring, what=source.url)
            self.log(f"verified {source.url}: good clear signature")
            return text
        if source.clearsigned:
            raise RefreshError(
                f"{source.url} is not clear-signed, but upstream signs it and a keyring was "
                "given: refusing its digests"
            )
        return None
