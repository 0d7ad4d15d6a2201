"""Downloads that never touch the disk: small documents into memory, big ones only hashed."""

from __future__ import annotations

import os
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Union

from .._progress import ProgressCallback
from ..hashing import BackgroundHashes
from ..settings import DEFAULT, Settings, TimeoutArg
from .route import fill
from .sinks import HashSink, MemorySink

#: read_url's default size limit: directory listings and SHA256SUMS files are far smaller.
DEFAULT_MAX_BYTES = 16 << 20


class Fetched(NamedTuple):
    url: str  # the final URL, after redirects
    status: int
    headers: Mapping[str, str]
    data: bytes


def read_url(
    url: Union[str, os.PathLike[str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: Optional[TimeoutArg] = None,
    retries: Optional[int] = None,
    ca_bundle: Optional[str] = None,
    settings: Optional[Settings] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Fetched:
    """The body of ``url`` in memory, with the same retry, resume, proxy, TLS and redirect rules
    as :func:`fetch`; more than ``max_bytes`` raises DownloadError. A file:// URL or a path
    gives status 200 and no headers.

    >>> read_url("https://cloud.debian.org/images/cloud/").data[:15]  # doctest: +SKIP
    b'<!DOCTYPE html>'
    """
    sink = MemorySink(max_bytes, os.fspath(url))
    outcome = fill(
        url,
        sink,
        None,
        (settings or DEFAULT).overridden(timeout, retries, ca_bundle),
        headers=headers,
    )
    return Fetched(outcome.url, outcome.status, outcome.headers, sink.getvalue())


def hash_url(
    url: Union[str, os.PathLike[str]],
    algorithms: Sequence[str] = ("sha256",),
    *,
    progress: Optional[ProgressCallback] = None,
    timeout: Optional[TimeoutArg] = None,
    retries: Optional[int] = None,
    ca_bundle: Optional[str] = None,
    settings: Optional[Settings] = None,
) -> Dict[str, str]:
    """Hex digests of the body of ``url`` for every algorithm named (sha256, sha512), in one
    pass that writes nothing to disk. A dropped connection resumes with Range/If-Range (a 200
    instead restarts the hashes).

    >>> hash_url("https://example.org/disk.qcow2", ("sha256", "sha512"))  # doctest: +SKIP
    {'sha256': '...', 'sha512': '...'}
    """
    hashes = BackgroundHashes(algorithms)  # hashing overlaps receiving
    try:
        fill(
            url,
            HashSink(hashes),
            None,
            (settings or DEFAULT).overridden(timeout, retries, ca_bundle),
            progress=progress,
        )
        return hashes.hexdigests()
    finally:
        hashes.close()
