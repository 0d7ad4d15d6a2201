"""Downloads that never touch the disk: small documents into memory, big ones only hashed."""

from __future__ import annotations

import os
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from .._progress import ProgressCallback
from ..errors import DownloadError
from .local import copy_into, local_path
from .sinks import BackgroundHashes, HashSink, MemorySink
from .to_file import DEFAULT_RETRIES, DEFAULT_TIMEOUT

#: read_url's default size limit: directory listings and SHA256SUMS files are far smaller.
DEFAULT_MAX_BYTES = 16 << 20


class Fetched(NamedTuple):
    url: str  # the final URL, after redirects
    status: int
    headers: Mapping[str, str]
    data: bytes


def read_url(
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: Union[float, Tuple[float, float]] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    ca_bundle: Optional[str] = None,
) -> Fetched:
    """The body of ``url`` in memory, with the same retry, resume, proxy, TLS and redirect rules
    as :func:`fetch`; more than ``max_bytes`` raises DownloadError. A file:// URL or a path
    gives status 200 and no headers.

    >>> read_url("https://cloud.debian.org/images/cloud/").data[:15]  # doctest: +SKIP
    b'<!DOCTYPE html>'
    """
    sink = MemorySink(max_bytes, url)
    source = local_path(url)
    if source is not None:
        _check_size(source, max_bytes, url)
        copy_into(source, sink, None)
        return Fetched(source.resolve().as_uri(), 200, {}, sink.getvalue())
    from .transfer import download

    outcome = download(url, sink, None, timeout=timeout, retries=retries, ca_bundle=ca_bundle)
    return Fetched(outcome.url, outcome.status, outcome.headers, sink.getvalue())


def hash_url(
    url: str,
    algorithms: Sequence[str] = ("sha256",),
    *,
    progress: Optional[ProgressCallback] = None,
    timeout: Union[float, Tuple[float, float]] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    ca_bundle: Optional[str] = None,
) -> Dict[str, str]:
    """Hex digests of the body of ``url`` for every hashlib algorithm named, in one pass that
    writes nothing to disk. A dropped connection resumes with Range/If-Range (a 200 instead
    restarts the hashes).

    >>> hash_url("https://example.org/disk.qcow2", ("sha256", "sha512"))  # doctest: +SKIP
    {'sha256': '...', 'sha512': '...'}
    """
    hashes = BackgroundHashes(algorithms)  # hashing overlaps receiving
    try:
        sink = HashSink(hashes)
        source = local_path(url)
        if source is not None:
            copy_into(source, sink, progress)
        else:
            from .transfer import download

            download(
                url, sink, None, timeout=timeout, retries=retries, ca_bundle=ca_bundle,
                progress=progress,
            )
        return hashes.hexdigests()
    finally:
        hashes.close()


def _check_size(source: os.PathLike[str], max_bytes: int, url: str) -> None:
    try:
        size = os.stat(source).st_size
    except OSError:
        return  # copy_into reports the error with the path
    if size > max_bytes:
        raise DownloadError(f"{url} is larger than the {max_bytes} bytes allowed", url=url)
