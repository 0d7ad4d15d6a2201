"""Replay fuzz/corpus/vhdx and seeded mutations of it through the VHDX fuzz harness's checks.

The same ``check_one`` atheris runs (fuzz/fuzz_vhdx.py): only VhdxError may escape, a failed
convert leaves nothing, a successful one agrees with read; each input is also tried with its
header and region table checksums repaired. Mutations are deterministic (fixed seeds) and land
in the parts of a seed that hold something (headers, region tables, metadata, BAT, log, data).
"""

from __future__ import annotations

import random
import signal
import struct
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from conftest import time_limit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from fuzz_vhdx import check_one  # noqa: E402

CORPUS = sorted((ROOT / "fuzz" / "corpus" / "vhdx").glob("*.vhdx"))
INTERESTING_64 = [0, 1, 2**63, 2**64 - 1, 2**44, 2**62, 512, 4096, 2**20, 2**31, 2**32 - 1,
                  6, 7, 6 | 1 << 20, 6 | 3 << 20, 2**46]  # fmt: skip
INTERESTING_32 = [0, 1, 2, 4, 7, 512, 4096, 2**16, 2**20, 2**21, 2**28, 2**31, 2**32 - 1, 2047,
                  2048, 65536 - 32]  # fmt: skip
CASE_SECONDS = 20


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    with time_limit(600, "a corpus input hangs the reader"):
        yield


def busy_pages(data: bytes) -> List[int]:
    """Offsets of the 4 KiB pages of ``data`` that are not all zeros."""
    zero = bytes(4096)
    return [p for p in range(0, len(data), 4096) if data[p : p + 4096] != zero[: len(data) - p]]


def mutate(data: bytes, pages: List[int], rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        page = rng.choice(pages)
        # structures sit at the start of their page: favour its first 128 bytes
        span = 128 if rng.random() < 0.6 else 4096
        pos = min(len(buf) - 8, page + rng.randrange(span))
        if pos < 0:
            break
        op = rng.randrange(6)
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 0x7F, 0x80, 0xFF])
        elif op == 2:
            struct.pack_into("<Q", buf, pos - pos % 8, rng.choice(INTERESTING_64))
        elif op == 3:
            struct.pack_into("<I", buf, pos - pos % 4, rng.choice(INTERESTING_32))
        elif op == 4:
            del buf[rng.choice([pos, rng.randrange(len(buf))]) :]
        else:
            n = rng.randrange(1, 64)
            buf[pos : pos + n] = rng.randbytes(n)
    return bytes(buf)


def test_corpus_is_present() -> None:
    assert len(CORPUS) >= 6
    assert sum(p.stat().st_size for p in CORPUS) < 24 << 20


@pytest.mark.parametrize("seed", CORPUS, ids=lambda p: p.stem)
def test_corpus_seed(seed: Path, tmp_path: Path) -> None:
    check_one(seed.read_bytes(), str(tmp_path))


def run_mutations(count: int, seed: int, workdir: Path) -> None:
    rng = random.Random(seed)
    seeds: List[Tuple[bytes, List[int]]] = [
        (data, busy_pages(data)) for data in (p.read_bytes() for p in CORPUS)
    ]
    for i in range(count):
        data, pages = rng.choice(seeds)
        case = mutate(data, pages, rng)
        signal.alarm(CASE_SECONDS)
        try:
            check_one(case, str(workdir))
        except Exception as exc:  # any escape: keep the input for a bug report
            name = workdir / f"failing-{seed}-{i}.vhdx"
            name.write_bytes(case)
            raise AssertionError(f"mutation {i} (seed {seed}, saved as {name}): {exc!r}") from exc


def test_mutations_quick(tmp_path: Path) -> None:
    run_mutations(300, seed=1, workdir=tmp_path)


@pytest.mark.slow
def test_mutations_many(tmp_path: Path) -> None:
    run_mutations(3000, seed=2, workdir=tmp_path)
