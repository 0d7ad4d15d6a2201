"""One refresh run's view of the upstream servers: listings, sums files, signatures, hashes.

All network access goes through the project's downloader (timeouts, retries, proxies); this
module adds the size bounds, the parsing and the optional signature check on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from .._progress import ProgressCallback
from .listing import Listing, parse_listing
from .signatures import verify_detached
from .sums import parse_sums

# An index page of a few hundred snapshots is ~100 KiB; sums files are a few KiB.
MAX_LISTING_BYTES = 8 << 20
MAX_SUMS_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 256 << 10

#: Called with a line of news for the user (``resolved ...``, ``fallback ...``).
Log = Callable[[str], None]
#: Given a label, the progress callback for hashing that image (or None).
ProgressFor = Callable[[str], Optional[ProgressCallback]]


@dataclass
class Upstream:
    """Fetching and checking helpers shared by the Debian and Ubuntu resolvers."""

    keyring: Optional[Path] = None
    log: Log = print
    progress_for: Optional[ProgressFor] = None
    #: Extra keyword arguments for the downloader (timeout=, retries=).
    network: Dict[str, Any] = field(default_factory=dict)

    def get(self, url: str, max_bytes: int) -> Tuple[str, str, bytes]:
        """(final URL after redirects, content type, body)."""
        from ..download import read_url

        fetched = read_url(url, max_bytes=max_bytes, **self.network)
        content_type = str(fetched.headers.get("Content-Type", "") or "")
        return fetched.url, content_type, fetched.data

    def listing(self, url: str) -> Listing:
        final, content_type, body = self.get(url, MAX_LISTING_BYTES)
        return parse_listing(body, final, content_type)

    def sums(self, url: str, algorithm: str, signature_url: Optional[str]) -> Dict[str, str]:
        """Parsed sums file at ``url``, its signature verified first when a keyring is set."""
        _, _, body = self.get(url, MAX_SUMS_BYTES)
        if self.keyring is not None and signature_url is not None:
            _, _, signature = self.get(signature_url, MAX_SIGNATURE_BYTES)
            verify_detached(body, signature, self.keyring, what=url)
        return parse_sums(body, algorithm, url=url)

    def hash(self, url: str, label: str) -> Dict[str, str]:
        """SHA-256 and SHA-512 of the file at ``url``, streamed: nothing is written to disk."""
        from ..download import hash_url

        progress = self.progress_for(label) if self.progress_for is not None else None
        return hash_url(url, ("sha256", "sha512"), progress=progress, **self.network)
