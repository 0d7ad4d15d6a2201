"""Replaying a fuzz corpus and seeded mutations of it without atheris (shared by
tests/test_vhd_fuzz_corpus.py and tests/test_vdi_fuzz_corpus.py). Mutations are deterministic
and aimed at the first 4 KiB (footers, headers, tables) and the last sector (a fixed VHD's
footer), with big- and little-endian values that sit on the formats' limits."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path
from typing import Callable, List

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
