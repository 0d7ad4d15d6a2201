"""Move one HTTP resource into a sink, resuming with Range/If-Range across failed attempts.

Each attempt asks for the bytes the sink does not hold yet. Only a 206 whose Content-Range starts
exactly there, for the same total and validator, is appended; a 200 means the server sent the
whole (possibly new) file, so the sink starts over with it. Connection errors, timeouts, short
bodies, 408/429/5xx are retried with backoff; an attempt that moved the download forward by at
least PROGRESS_CREDIT bytes does not count against ``retries``, so a long download over a link
that drops now and then still finishes, while a server that never delivers gives up soon.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Mapping, Optional, Tuple

import urllib3
from urllib3.exceptions import HTTPError, LocationValueError, SSLError

from .._progress import ProgressCallback, Throttle
from ..errors import DownloadError
from ..settings import Settings
from . import retry
from .client import open_url, urllib3_timeout
from .partial import Validators
from .route import Outcome
from .sinks import RECV_BYTES, Sink

#: Bytes an attempt must add before its failure stops counting as one.
PROGRESS_CREDIT = 1 << 20

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class _Failure(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Attempt:
    """State shared by the attempts of one download."""

    def __init__(
        self,
        url: str,
        sink: Sink,
        validators: Optional[Validators],
        timeout: urllib3.Timeout,
        ca_bundle: Optional[str],
        report: Throttle,
        on_validators: Optional[Callable[[Validators], None]],
        extra_headers: Mapping[str, str],
    ) -> None:
        self.url = url
        self.extra_headers = extra_headers
        self.sink = sink
        self.validators = validators
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self.report = report
        self.on_validators = on_validators
        self._body_read = False

    @property
    def total(self) -> Optional[int]:
        return self.validators.total if self.validators else None

    def _start_over(self) -> None:
        self.sink.restart()
        self.validators = None

    def _adopt(self, validators: Validators) -> None:
        self.validators = validators
        if self.on_validators is not None:
            self.on_validators(validators)

    def run(self) -> Optional[Outcome]:
        """One request. Returns the outcome when complete, None when another request should
        follow at once (the server sent only part of the remaining range)."""
        offset = self.sink.done
        known = self.validators
        headers = dict(self.extra_headers)
        if offset > 0 and (known is None or known.if_range is None):
            self._start_over()  # nothing proves the bytes held are a prefix of today's file
            offset, known = 0, None
        if offset > 0 and known is not None and known.if_range is not None:
            headers.update({"Range": f"bytes={offset}-", "If-Range": known.if_range})
        try:
            opened = open_url(self.url, headers, timeout=self.timeout, ca_bundle=self.ca_bundle)
        except SSLError as exc:
            raise DownloadError(f"TLS error for {self.url}: {exc}", url=self.url) from exc
        except LocationValueError as exc:
            raise DownloadError(f"bad URL {self.url!r}: {exc}", url=self.url) from exc
        except (HTTPError, OSError) as exc:
            raise _Failure(f"cannot connect: {_reason(exc)}") from exc
        response = opened.response
        self._body_read = False
        try:
            return self._handle(opened.url, response, offset, known)
        finally:
            if not self._body_read:
                response.close()  # an unread body must not go back into the pool
            response.release_conn()

    def _handle(
        self,
        final_url: str,
        response: urllib3.BaseHTTPResponse,
        offset: int,
        known: Optional[Validators],
    ) -> Optional[Outcome]:
        status = response.status
        headers = response.headers
        range_end: Optional[int] = None
        if status == 200:
            if offset:
                self.sink.restart()  # If-Range failed or Range ignored: this is the whole file
            self._adopt(Validators.from_headers(self.url, headers, _content_length(headers)))
        elif status == 206:
            parsed = _parse_content_range(headers.get("Content-Range"))
            fresh = Validators.from_headers(self.url, headers, parsed[2] if parsed else None)
            expected = known if offset else None
            if (
                parsed is None
                or parsed[0] != offset
                or (expected is not None and not expected.consistent_with(fresh))
            ):
                if offset:
                    self._start_over()
                raise _Failure(
                    f"HTTP 206 with Content-Range {headers.get('Content-Range')!r} "
                    f"and ETag {headers.get('ETag')!r} for a request from byte {offset}"
                    + ("; starting over" if offset else "")
                )
            range_end = parsed[1]
            if expected is None:
                self._adopt(fresh)
        elif status == 416 and offset:
            unsatisfied = _UNSATISFIED_RANGE.fullmatch(headers.get("Content-Range", "").strip())
            complete = known is not None and known.total == offset
            if complete and (unsatisfied is None or int(unsatisfied.group(1)) == offset):
                assert known is not None
                return Outcome(final_url, status, headers, known)
            self._start_over()
            return None  # the file upstream is shorter now: fetch it again from the start
        elif retry.is_retryable_status(status):
            raise _Failure(
                f"HTTP {status} {response.reason or ''}".rstrip(),
                retry.parse_retry_after(headers.get("Retry-After")),
            )
        else:
            raise DownloadError(
                f"HTTP {status} {response.reason or ''}".rstrip() + f" for {final_url}",
                url=self.url,
                status=status,
            )
        self._read_body(response)
        return self._check_complete(final_url, response, range_end)

    def _read_body(self, response: urllib3.BaseHTTPResponse) -> None:
        sink, total = self.sink, self.total
        self.report(sink.done, total)
        # read1 returns what has arrived (one recv), so a timeout or reset loses nothing
        # already received; read(n) would drop up to n buffered bytes. urllib3 < 2.3 lacks it.
        read = getattr(response, "read1", None) or response.read
        try:
            while True:
                data = read(RECV_BYTES, decode_content=False)
                if not data:
                    break
                sink.write(data)
                self.report(sink.done, total)
        except (HTTPError, OSError) as exc:
            raise _Failure(f"connection lost: {_reason(exc)}") from exc
        self._body_read = True
        if total is not None and sink.done > total:
            self._start_over()
            raise _Failure(f"server sent more than the {total} bytes it announced; starting over")

    def _check_complete(
        self, final_url: str, response: urllib3.BaseHTTPResponse, range_end: Optional[int]
    ) -> Optional[Outcome]:
        total, done = self.total, self.sink.done
        assert self.validators is not None
        if total is None or done == total:
            return Outcome(final_url, response.status, response.headers, self.validators)
        if range_end is not None and done == range_end + 1:
            return None  # a complete partial response; ask for the rest
        raise _Failure(f"body ended early, at byte {done} of {total}")


def download(
    url: str,
    sink: Sink,
    validators: Optional[Validators],
    settings: Settings,
    *,
    progress: Optional[ProgressCallback] = None,
    on_validators: Optional[Callable[[Validators], None]] = None,
    resume_hint: str = "",
    path: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Outcome:
    """Fill ``sink`` with the body of ``url``, starting from ``sink.done`` bytes that belong to
    the resource ``validators`` describes (None: start from scratch).

    ``on_validators`` is told the identity of the resource whenever a response starts a body
    afresh, before any byte of it reaches the sink (so a sidecar on disk never describes bytes
    of another file). ``headers`` are sent with every request (e.g. a registry's
    Authorization). Raises DownloadError after ``settings.retry.total`` failed attempts.
    """
    attempt = _Attempt(
        url,
        sink,
        validators,
        urllib3_timeout(settings.timeout),
        settings.ca_bundle,
        Throttle(progress),
        on_validators,
        headers or {},
    )
    policy = settings.retry
    failures = 0
    attempts = 0
    while True:
        attempts += 1
        before = sink.done
        try:
            outcome = attempt.run()
        except DownloadError as exc:  # not worth retrying; say where it stopped
            if exc.path is None:
                exc.path = path
            if exc.done is None:
                exc.done, exc.total = sink.done, attempt.total
            raise
        except _Failure as failure:
            if sink.done - before < PROGRESS_CREDIT:
                failures += 1
            if failures > policy.total:
                got = f"{sink.done} of {attempt.total}" if attempt.total else f"{sink.done}"
                raise DownloadError(
                    f"{url}: {failure}; gave up after {attempts} attempts with {got} bytes"
                    + (f"; {resume_hint}" if resume_hint else ""),
                    url=url,
                    path=path,
                    done=sink.done,
                    total=attempt.total,
                ) from failure
            time.sleep(policy.delay(max(failures, 1), failure.retry_after))
            continue
        if outcome is not None:
            attempt.report(sink.done, attempt.total, final=True)
            return outcome


def _content_length(headers: Mapping[str, str]) -> Optional[int]:
    value = headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _parse_content_range(value: Optional[str]) -> Optional[Tuple[int, int, int]]:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    start, end, total = (int(g) for g in match.groups())
    if not start <= end < total:
        return None
    return start, end, total


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
