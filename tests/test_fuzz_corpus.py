"""Replay fuzz/corpus and seeded mutations of it through the fuzz harness's checks.

The same ``check_one`` the atheris harness runs (fuzz/fuzz_qcow2.py): only Qcow2Error or
MissingExtraError may escape, a failed convert leaves nothing, a successful one agrees with read.
Mutations are cheap and deterministic (fixed seed), aimed at the header and table entries.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
from conftest import time_limit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from fuzz_qcow2 import check_one  # noqa: E402

pytest.importorskip("pyimagecache.qcow2")

CORPUS = sorted((ROOT / "fuzz" / "corpus").glob("*.qcow2"))
INTERESTING_64 = [0, 1, 2**63, 2**64 - 1, 2**56, 2**62, 512, 2**31, 2**32 - 1, 2**40]
INTERESTING_8 = [0, 1, 0x7F, 0x80, 0xFF, 0x40]


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    with time_limit(300, "a corpus input hangs the reader"):
        yield


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        # half the edits land in the header/extensions, the rest anywhere (tables, streams)
        limit = min(len(buf), 512) if rng.random() < 0.5 else len(buf)
        if limit < 8:
            break
        op = rng.randrange(6)
        pos = rng.randrange(limit)
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.choice(INTERESTING_8)
        elif op == 2:
            at = min(pos - pos % 8, len(buf) - 8)
            struct.pack_into(">Q", buf, at, rng.choice(INTERESTING_64))
        elif op == 3:
            at = min(pos - pos % 4, len(buf) - 4)
            struct.pack_into(">I", buf, at, rng.choice(INTERESTING_64) & 0xFFFFFFFF)
        elif op == 4:
            del buf[rng.randrange(len(buf)) :]
        else:
            n = rng.randrange(1, 64)
            buf[pos : pos + n] = rng.randbytes(n)
    return bytes(buf)


def test_corpus_is_present_and_small() -> None:
    assert len(CORPUS) >= 10
    assert sum(p.stat().st_size for p in CORPUS) < 1 << 20


@pytest.mark.parametrize("seed", CORPUS, ids=lambda p: p.stem)
def test_corpus_seed(seed: Path, tmp_path: Path) -> None:
    check_one(seed.read_bytes(), str(tmp_path))


def run_mutations(count: int, seed: int, workdir: Path) -> None:
    rng = random.Random(seed)
    seeds: List[bytes] = [p.read_bytes() for p in CORPUS]
    for i in range(count):
        data = mutate(rng.choice(seeds), rng)
        try:
            check_one(data, str(workdir))
        except Exception as exc:  # any escape: keep the input for a bug report
            name = workdir / f"failing-{seed}-{i}.qcow2"
            name.write_bytes(data)
            raise AssertionError(f"mutation {i} (seed {seed}, saved as {name}): {exc}") from exc


def test_mutations_quick(tmp_path: Path) -> None:
    run_mutations(400, seed=1, workdir=tmp_path)


@pytest.mark.slow
def test_mutations_many(tmp_path: Path) -> None:
    run_mutations(3000, seed=2, workdir=tmp_path)
