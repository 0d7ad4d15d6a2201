"""One refresh run's view of the upstream servers: listings, checksum files, signatures.

All network access goes through the project's downloader (timeouts, retries, proxies, CA
bundle); this module adds the size bounds, the parsing, a per-run cache (Debian's SHA512SUMS
serves every arch of a snapshot) and the signature checks on top. Nothing here downloads an
image: every digest comes from a checksum file upstream publishes.

Signatures (:class:`~.signatures.SignaturePolicy`): for a family that signs, a detached
signature (``SHA256SUMS.gpg``, ``.sha256.asc``, ``CHECKSUM.asc``, ``.SHA256.sig``) or a clear
signature (Fedora's CHECKSUM) is checked with gpgv against the shipped keys for that family and
release, or the user's keyring; a bad or missing one rejects that checksum file (the snapshot
is skipped, never trusted). With ``--no-verify-signatures`` nothing is checked, a clear-signed
file's armour is stripped and its signed text parsed, and the log says so. Every checksum file
read is reported with its state (:data:`~.signatures.VERIFIED`, ``UNSIGNED``, ``NOT_CHECKED``),
which the catalog's provenance records carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

from ..errors import DownloadError, RefreshError
from ..settings import Settings
from .layout import SumsSource, basename
from .listing import Listing, parse_listing
from .signatures import (
    NOT_CHECKED,
    UNSIGNED,
    VERIFIED,
    SignaturePolicy,
    SignatureRejected,
    verify_clearsigned,
    verify_detached,
)
from .sums import Sums, is_clearsigned, parse_checksums

# An index page of a few hundred snapshots is ~100 KiB; sums files are a few KiB.
MAX_LISTING_BYTES = 8 << 20
MAX_SUMS_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 256 << 10
#: The HTTP statuses that mean "not there (any more)".
GONE = (404, 410)

#: Called with a line of news for the user (``resolved ...``, ``fallback ...``).
Log = Callable[[str], None]


class Checked(NamedTuple):
    """A checksum file read for a resolver: its digests and what its signature proved."""

    sums: Sums
    #: :data:`~.signatures.VERIFIED`, ``UNSIGNED`` or ``NOT_CHECKED``.
    signature: str
    #: The primary fingerprint of the key that made a verified signature ("" otherwise).
    key: str = ""


@dataclass
class Upstream:
    """Fetching and checking helpers shared by every family's resolver."""

    policy: SignaturePolicy = field(default_factory=SignaturePolicy)
    log: Log = print
    #: Extra keyword arguments for the downloader (timeout=, retries=).
    network: Dict[str, Any] = field(default_factory=dict)
    settings: Optional[Settings] = None
    _listings: Dict[str, Optional[Listing]] = field(default_factory=dict, repr=False)
    _sums: Dict[Tuple[str, str], Union[Checked, str]] = field(default_factory=dict, repr=False)

    @property
    def keyring(self) -> Optional[Path]:
        """The user's keyring replacing the shipped keys, if any."""
        return self.policy.keyring

    @property
    def verifying(self) -> bool:
        """Signatures are checked (the default), so a family that signs must have signed."""
        return self.policy.verify

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
        """The checksum file ``source`` parsed (for ``name``, which a bare sidecar is about);
        :class:`SignatureRejected` when it carries no good signature where upstream signs.
        Families without a signing key use this; :meth:`checked` says more."""
        got = self.checked(source, name, family="", version="")
        if isinstance(got, str):
            raise SignatureRejected(got)
        return got.sums

    def checked(
        self, source: SumsSource, name: str, *, family: str, version: str
    ) -> Union[Checked, str]:
        """The checksum file ``source`` parsed, with its signature checked as the policy says
        against the keys for ``family`` release ``version``; or, when upstream signs it and the
        signature is missing or bad, why it is rejected (one line: the file, what gpgv said)."""
        key = (source.url, name if source.fmt == "bare" else "")  # only a bare sidecar needs it
        cached = self._sums.get(key)
        if cached is not None:
            return cached
        _, _, body = self.get(source.url, MAX_SUMS_BYTES)
        result: Union[Checked, str]
        if source.signed and self.policy.verify:
            try:
                signed, fingerprint = self._verify(source, body, family, version)
            except SignatureRejected as exc:
                result = str(exc)
            else:
                sums = self._parse(source, name, body, signed)
                result = Checked(sums, VERIFIED, fingerprint)
        else:
            sums = self._parse(source, name, body, None)
            if source.signed or sums.clearsigned:
                why = (
                    "--no-verify-signatures"
                    if not self.policy.verify
                    else "the family is not known to sign, so no key is trusted for it"
                )
                kind = "clear-signed" if sums.clearsigned else "signed upstream"
                self.log(
                    f"unverified {source.url}: {kind}, but its signature was NOT checked ({why})"
                )
                result = Checked(sums, NOT_CHECKED)
            else:
                self.log(f"unsigned {source.url}: upstream publishes no signature for it")
                result = Checked(sums, UNSIGNED)
        self._sums[key] = result
        return result

    @staticmethod
    def _parse(source: SumsSource, name: str, body: bytes, signed: Optional[str]) -> Sums:
        return parse_checksums(
            body, source.fmt, url=source.url, algorithm=source.algorithm, name=name, signed=signed
        )

    def _verify(
        self, source: SumsSource, body: bytes, family: str, version: str
    ) -> Tuple[str, str]:
        """(the text gpgv verified, the signing key's fingerprint); SignatureRejected for a
        bad or missing signature."""
        keys = self.policy.keys_for(family, version)
        if source.signature:
            try:
                _, _, signature = self.get(source.signature, MAX_SIGNATURE_BYTES)
            except DownloadError as exc:
                if exc.status not in GONE:
                    raise
                raise SignatureRejected(
                    f"no {basename(source.signature)} beside {basename(source.url)} "
                    f"(HTTP {exc.status}); upstream signs it, so it is not trusted unsigned"
                ) from None
            what = f"{basename(source.url)} ({source.signature})"
            fingerprint = verify_detached(body, signature, keys, what=what)
            self.log(
                f"verified {source.url}: good signature by {fingerprint} in {source.signature}"
            )
            try:
                return body.decode("utf-8"), fingerprint
            except UnicodeDecodeError as exc:
                raise RefreshError(f"{source.url}: not UTF-8 text (byte {exc.start})") from None
        if not is_clearsigned(body):
            raise SignatureRejected(
                f"{basename(source.url)} is not clear-signed ({source.url}); upstream signs it, "
                "so it is not trusted unsigned"
            )
        text, fingerprint = verify_clearsigned(
            body, keys, what=f"{basename(source.url)} ({source.url})"
        )
        self.log(f"verified {source.url}: good clear signature by {fingerprint}")
        return text, fingerprint
