"""Convert while downloading: the first ``ensure`` waits for about the download alone.

The download runs on a thread into its usual ``.part`` file; as soon as its final length is
known, the converter (or the stream unpacker) reads that partial file as a
:class:`~pyimagecache.sourcefile.GrowingFile`, waiting for each range until it has arrived.
Nothing is published before the download is complete and its digest verified: the output
goes to a hidden scratch file, which is renamed into place only then.

Whatever goes wrong degrades to what ensure did before, never to a wrong disk:

- the download restarts (a 200 instead of a 206, a changed validator) or fails: the scratch
  output is discarded; a failed download raises as before (its partial kept for resume), a
  restarted one is converted after it completes;
- the digest does not match: the scratch output is discarded, ChecksumMismatchError;
- the format cannot be told from the head (a fixed VHD is raw data with a trailing footer),
  the head says raw (nothing to convert), or there is too little room for the download's rest
  plus the disk: convert after the download, as before;
- an image whose tables come last simply waits for them: convert-after-download in effect;
- an error or a signal in the conversion: the download is stopped (kept for resume) when the
  run is ending anyway (a signal), or allowed to finish when the source may be kept (no space
  to convert: the next run converts the verified download without fetching it again).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from . import formats
from ._progress import ProgressCallback
from ._space import free_bytes
from .hashing import Expected
from .settings import Settings
from .sourcefile import GrowingFile, SourceChanged

#: Runs one download, telling ``watch`` (when it is called) where the partial file grows;
#: returns the file's digests.
Download = Callable[[Callable[[Path, int, int], GrowingFile]], Dict[str, str]]


class Overlap:
    """One download on a thread, offering its partial file to a reader while it grows."""

    def __init__(self, download: Download) -> None:
        self._download = download
        self._ready = threading.Event()
        self.growing: Optional[GrowingFile] = None
        self._digests: Optional[Dict[str, str]] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="ensure-download", daemon=True)

    @classmethod
    def of_url(
        cls,
        url: str,
        dest: Path,
        expected: Expected,
        settings: Settings,
        progress: Optional[ProgressCallback],
        record: Sequence[str],
    ) -> Overlap:
        """The download of ``url`` to ``dest`` by the package's downloader."""
        from .download.to_file import fetch_verified

        return cls(
            lambda watch: fetch_verified(
                url, dest, expected, settings, progress, watch=watch, record=record
            )
        )

    def _watch(self, part: Path, total: int, written: int) -> GrowingFile:
        self.growing = GrowingFile(part, total, written)
        self._ready.set()
        return self.growing

    def _run(self) -> None:
        try:
            self._digests = self._download(self._watch)
        except BaseException as exc:  # handed to the caller's thread by result()
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> Optional[GrowingFile]:
        """Start downloading; return the growing partial file once its length is known, or
        None when there will be none to read early (a local file, no Content-Length, or a
        download over before its body began)."""
        self._thread.start()
        self._ready.wait()
        return self.growing

    def result(self) -> Dict[str, str]:
        """Wait for the download; its digests, or its exception."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digests is not None
        return self._digests

    def stop(self) -> None:
        """Stop the download at its next write (its partial file stays) and wait for it."""
        if self.growing is not None:
            self.growing.cancel()
        if self._thread.is_alive():
            self._thread.join()

    def close(self) -> None:
        if self.growing is not None:
            self.growing.close()


#: For a container, whose unpacked size is unknown until its end, the room asked for besides
#: the rest of the download, in multiples of the download's size.
CONTAINER_MARGIN = 2


def worth_overlapping(
    growing: GrowingFile, fmt: str, raw: Path, virtual_size: Optional[int] = None
) -> bool:
    """Whether converting ``growing`` now can work: its format is known from the head and is
    one that needs converting, and the rest of the download plus the output fit (for a disk
    image its virtual size; for a container, whose output size is unknown yet,
    ``CONTAINER_MARGIN`` times the download). When not, converting after the download keeps
    the download from competing with the conversion for the last free bytes."""
    if fmt == formats.RAW or fmt not in formats.CONVERTIBLE:
        return False
    output = virtual_size if virtual_size is not None else CONTAINER_MARGIN * growing.size
    free = free_bytes(raw.parent)
    return free is None or free >= (growing.size - growing.written) + output


__all__ = ["Overlap", "SourceChanged", "worth_overlapping"]
