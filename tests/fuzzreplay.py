"""Replaying a fuzz corpus and seeded mutations of it without atheris (shared by
tests/test_vhd_fuzz_corpus.py and tests/test_vdi_fuzz_corpus.py). Mutations are deterministic
and aimed at the first 4 KiB (footers, headers, tables) and the last sector (a fixed VHD's
footer), with big- and little-endian values that sit on the formats' limits."""

from __future__ import annotations

import importlib
import random
import struct
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from conftest import time_limit

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

INTERESTING = [0, 1, 2**31, 2**32 - 1, 2**32 - 2, 512, 4096, 1 << 20, 2**63, 2**64 - 1, 0xFF000000]
#: Seconds one input may take, at most (open, walk, read, convert).
CASE_SECONDS = 10


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if len(buf) < 16:
            break
        where = rng.random()
        if where < 0.6:
            pos = rng.randrange(min(len(buf), 4096))
        elif where < 0.75:
            pos = len(buf) - 1 - rng.randrange(min(len(buf), 512))
        else:
            pos = rng.randrange(len(buf))
        op = rng.randrange(6)
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
        elif op in (2, 3):
            size, fmt = rng.choice([(4, "I"), (8, "Q")])
            at = max(0, min(pos - pos % 4, len(buf) - size))
            value = rng.choice(INTERESTING) & ((1 << 8 * size) - 1)
            struct.pack_into((">" if op == 2 else "<") + fmt, buf, at, value)
        elif op == 4:
            del buf[rng.randrange(len(buf)) :]
        else:
            n = rng.randrange(1, 64)
            buf[pos : pos + n] = rng.randbytes(n)
    return bytes(buf)


def replay(
    check_one: Callable[[bytes, str], None],
    corpus: List[Path],
    count: int,
    seed: int,
    workdir: Path,
    suffix: str,
) -> None:
    rng = random.Random(seed)
    seeds = [p.read_bytes() for p in corpus]
    for i in range(count):
        data = mutate(rng.choice(seeds), rng)
        started = time.monotonic()
        try:
            check_one(data, str(workdir))
        except Exception as exc:  # any escape: keep the input for a bug report
            name = workdir / f"failing-{seed}-{i}{suffix}"
            name.write_bytes(data)
            raise AssertionError(f"mutation {i} (seed {seed}, saved as {name}): {exc!r}") from exc
        elapsed = time.monotonic() - started
        assert elapsed < CASE_SECONDS, f"mutation {i} (seed {seed}) took {elapsed:.1f} s"


class CorpusReplay:
    """The replay tests of one format's corpus; a module subclasses it as ``Test...`` with
    ``fmt`` set (fuzz/fuzz_<fmt>.py provides ``check_one``)."""

    fmt = ""

    @pytest.fixture(autouse=True)
    def no_hang(self) -> Iterator[None]:
        with time_limit(300, "a corpus input hangs the reader"):
            yield

    def corpus(self) -> List[Path]:
        return sorted((FUZZ / "corpus" / self.fmt).glob(f"*.{self.fmt}"))

    def check_one(self, data: bytes, workdir: str) -> None:
        check: Callable[[bytes, str], None] = importlib.import_module(f"fuzz_{self.fmt}").check_one
        check(data, workdir)

    def test_corpus_is_present_and_small(self) -> None:
        assert len(self.corpus()) >= 4
        assert sum(p.stat().st_size for p in self.corpus()) < 3 << 20

    def test_corpus_seeds(self, tmp_path: Path) -> None:
        for seed in self.corpus():
            self.check_one(seed.read_bytes(), str(tmp_path))

    def test_mutations_quick(self, tmp_path: Path) -> None:
        replay(self.check_one, self.corpus(), 400, 1, tmp_path, f".{self.fmt}")

    @pytest.mark.slow
    def test_mutations_many(self, tmp_path: Path) -> None:
        replay(self.check_one, self.corpus(), 4000, 2, tmp_path, f".{self.fmt}")
