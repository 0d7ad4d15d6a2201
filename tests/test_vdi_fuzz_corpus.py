"""Replay fuzz/corpus/vdi/ and a few hundred seeded mutations of it through the checks of
fuzz/fuzz_vdi.py: only the format's own error, no hang, nothing left by a failed convert."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Iterator, Optional

import pytest
from fuzzreplay import replay

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from fuzz_vdi import check_one  # noqa: E402

CORPUS = sorted((ROOT / "fuzz" / "corpus" / "vdi").glob("*.vdi"))


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    def expired(signum: int, frame: Optional[FrameType]) -> None:
        raise TimeoutError("a corpus input hangs the reader")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(300)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_corpus_is_present_and_small() -> None:
    assert len(CORPUS) >= 4
    assert sum(p.stat().st_size for p in CORPUS) < 3 << 20


@pytest.mark.parametrize("seed", CORPUS, ids=lambda p: p.stem)
def test_corpus_seed(seed: Path, tmp_path: Path) -> None:
    check_one(seed.read_bytes(), str(tmp_path))


def test_mutations_quick(tmp_path: Path) -> None:
    replay(check_one, CORPUS, 400, seed=1, workdir=tmp_path, suffix=".vdi")


@pytest.mark.slow
def test_mutations_many(tmp_path: Path) -> None:
    replay(check_one, CORPUS, 4000, seed=2, workdir=tmp_path, suffix=".vdi")
