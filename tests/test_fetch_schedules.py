"""Random fault schedules: every fetch ends verified-correct, or with a clear error and nothing
at dest; the partial it leaves is always a prefix of the file and the next call resumes it.
Only the "replace" fault (new bytes upstream) may end in ChecksumMismatchError."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import tempfile
from pathlib import Path
from typing import Iterator, List

import pytest
from faultserver import FaultServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyimagecache import download
from pyimagecache.errors import ChecksumMismatchError, DownloadError
from pyimagecache.settings import Retry, Settings

# Backoff in milliseconds, passed down as settings (no module globals to patch).
FAST = Settings(retry=Retry(backoff_base=0.001, backoff_max=0.002))
fetch = functools.partial(download.fetch, settings=FAST)

SIZE = 200_000
DATA = random.Random(3).randbytes(SIZE)
SHA = hashlib.sha256(DATA).hexdigest()
REVERSED = DATA[::-1]  # what the "replace" fault publishes upstream

_offsets = st.integers(min_value=0, max_value=SIZE)
FAULT = st.one_of(
    st.builds("drop:{}".format, _offsets),
    st.builds("short:{}".format, _offsets),
    st.sampled_from(
        [
            "stall:0.3",
            "ignore_range",
            "bad_start",
            "bad_total",
            "new_etag",
            "replace",
            "416",
            "503:0",
            "429",
            "500",
            "404",
            "redirect",
            "redirect_loop",
            "weak_etag",
        ]
    ),
)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(DATA) as srv:
        yield srv


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(FAULT, max_size=6),
    retries=st.integers(min_value=0, max_value=3),
    verify=st.booleans(),
)
def test_any_fault_schedule(
    server: FaultServer, faults: List[str], retries: int, verify: bool
) -> None:
    server._faults.clear()
    if server.data != DATA:
        server.replace(DATA)
    server.schedule(*faults)
    replaced = "replace" in faults
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp, "disk.img")
        part = Path(tmp, "disk.img.part")
        try:
            fetch(
                server.url, dest, sha256=SHA if verify else None, retries=retries, timeout=(5, 0.1)
            )
        except ChecksumMismatchError as exc:
            assert replaced and verify and (exc.expected, exc.actual) == (SHA, _sha(REVERSED))
            assert not dest.exists() and not part.exists()
            return
        except DownloadError as exc:
            assert str(exc)
            assert not dest.exists()
            held = part.read_bytes() if part.exists() else b""
            assert DATA.startswith(held) or (replaced and REVERSED.startswith(held))
            meta = Path(tmp, "disk.img.part.meta")
            resumable = held and meta.exists() and json.loads(meta.read_text())["etag"]
        else:
            assert dest.read_bytes() == DATA or (
                replaced and not verify and dest.read_bytes() == REVERSED
            )
            assert not part.exists()
            return
        # The next call, without faults, finishes and transfers only what is missing.
        server._faults.clear()
        server.clear_log()
        fetch(server.url, dest, sha256=_sha(server.data), timeout=(5, 0.5))
        assert dest.read_bytes() == server.data
        sent = sum(r.sent for r in server.log)
        assert sent == (SIZE - len(held) if resumable else SIZE)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
