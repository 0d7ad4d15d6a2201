"""Replay fuzz/corpus/vmdk and seeded mutations of it through the VMDK fuzz harness's checks.

The same ``check_one`` the atheris harness runs (fuzz/fuzz_vmdk.py): only VmdkError may
escape, a failed convert leaves nothing, a successful one agrees with read. Mutations are
deterministic (fixed seed), aimed at the header, the descriptor text, tables and markers;
each case is bounded in time.
"""

from __future__ import annotations

import random
import signal
import struct
import sys
from pathlib import Path
from types import FrameType
from typing import Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from fuzz_vmdk import check_one  # noqa: E402

CORPUS = sorted((ROOT / "fuzz" / "corpus" / "vmdk").glob("*.vmdk"))
CASE_SECONDS = 10
INTERESTING_64 = [0, 1, 2**63, 2**64 - 1, 2**32, 2**62, 512, 2**31, 2**32 - 1, 2**40]
INTERESTING_8 = [0, 1, 0x7F, 0x80, 0xFF, 0x22, 0x0A, 0x2E, 0x2F]
TOKENS = [b"RW", b"SPARSE", b"FLAT", b"ZERO", b"VMFS", b'"', b"..", b"/", b"\n", b"=",
          b"createType", b"parentFileNameHint", b"99999999999", b"0"]  # fmt: skip


class Hang(Exception):
    pass


@pytest.fixture
def alarm() -> Iterator[None]:
    def expired(signum: int, frame: Optional[FrameType]) -> None:
        raise Hang()

    old = signal.signal(signal.SIGALRM, expired)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        # half the edits land in the header (or the text of a descriptor), the rest anywhere
        limit = min(len(buf), 512) if rng.random() < 0.5 else len(buf)
        if limit < 8:
            break
        op = rng.randrange(7)
        pos = rng.randrange(limit)
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.choice(INTERESTING_8)
        elif op == 2:
            at = min(pos, len(buf) - 8)
            struct.pack_into("<Q", buf, at, rng.choice(INTERESTING_64))
        elif op == 3:
            at = min(pos - pos % 4, len(buf) - 4)
            struct.pack_into("<I", buf, at, rng.choice(INTERESTING_64) & 0xFFFFFFFF)
        elif op == 4:
            del buf[rng.randrange(len(buf)) :]
        elif op == 5:
            token = rng.choice(TOKENS)
            buf[pos : pos + rng.randrange(0, 4)] = token
        else:
            n = rng.randrange(1, 64)
            buf[pos : pos + n] = rng.randbytes(n)
    return bytes(buf)


def test_corpus_is_present_and_small() -> None:
    assert len(CORPUS) >= 8
    assert sum(p.stat().st_size for p in CORPUS) < 1 << 20


@pytest.mark.parametrize("seed", CORPUS, ids=lambda p: p.stem)
def test_corpus_seed(seed: Path, tmp_path: Path, alarm: None) -> None:
    signal.alarm(CASE_SECONDS)
    check_one(seed.read_bytes(), str(tmp_path))


def run_mutations(count: int, seed: int, workdir: Path) -> None:
    rng = random.Random(seed)
    seeds: List[bytes] = [p.read_bytes() for p in CORPUS]
    for i in range(count):
        data = mutate(rng.choice(seeds), rng)
        signal.alarm(CASE_SECONDS)
        try:
            check_one(data, str(workdir))
        except Exception as exc:  # any escape or a hang: keep the input for a bug report
            name = workdir.parent / f"failing-vmdk-{seed}-{i}.vmdk"
            name.write_bytes(data)
            raise AssertionError(
                f"mutation {i} (seed {seed}, saved as {name}): {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            signal.alarm(0)


def test_mutations_quick(tmp_path: Path, alarm: None) -> None:
    run_mutations(100 * len(CORPUS), seed=1, workdir=tmp_path)


@pytest.mark.slow
def test_mutations_many(tmp_path: Path, alarm: None) -> None:
    run_mutations(5000, seed=2, workdir=tmp_path)
