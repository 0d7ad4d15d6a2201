"""``file://`` URLs and plain paths: air-gapped mirrors, copied through the same sinks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlsplit

from .._progress import ProgressCallback, Throttle
from ..errors import DownloadError
from .sinks import RECV_BYTES, Sink


def local_path(url: Union[str, os.PathLike[str]]) -> Optional[Path]:
    """The file ``url`` names when it is a path or a file:// URL, None for anything else.

    >>> local_path("file:///srv/mirror/disk.qcow2")
    PosixPath('/srv/mirror/disk.qcow2')
    """
    if isinstance(url, os.PathLike):
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(f"file URL with a remote host is not supported: {url}", url=url)
        from urllib.request import url2pathname  # heavy: imported only for file:// URLs

        return Path(url2pathname(parts.path))
    if parts.scheme == "":
        return Path(url)
    return None


def copy_into(source: Path, sink: Sink, progress: Optional[ProgressCallback]) -> int:
    """Copy ``source`` into ``sink`` from the start; return the byte count."""
    report = Throttle(progress)
    sink.restart()
    try:
        with open(source, "rb", buffering=0) as f:
            total: Optional[int] = os.fstat(f.fileno()).st_size
            if not source.is_file():
                total = None  # a pipe or device: its size means nothing
            while True:
                data = f.read(RECV_BYTES)
                if not data:
                    break
                sink.write(data)
                report(sink.done, total)
    except OSError as exc:
        raise DownloadError(
            f"cannot read {source}: {exc.strerror or exc}", url=str(source), path=str(source)
        ) from exc
    report(sink.done, total, final=True)
    return sink.done
