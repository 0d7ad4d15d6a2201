"""Write the VDI seed corpus (fuzz/corpus/vdi/) with the test suite's VDI writer. Blocks are
1 MiB (the only size qemu opens), so the seeds hold discarded or unallocated blocks only but
one, which holds a single mostly-zero data block. Deterministic.

    python fuzz/make_corpus_vdi.py [OUTDIR]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from vdiwriter import BLOCK, STATIC, ZERO, VdiWriter  # noqa: E402


def seeds() -> Dict[str, bytes]:
    rng = random.Random(2025)
    out: Dict[str, bytes] = {}
    out["dynamic-empty-64m"] = bytes(VdiWriter(64 * BLOCK).build().data)

    w = VdiWriter(5 * BLOCK + 333)
    w[1] = ZERO
    w[4] = ZERO
    out["dynamic-discarded-odd-size"] = bytes(w.build().data)

    w = VdiWriter(3 * BLOCK, extra_blocks=2)
    w[2] = rng.randbytes(700) + bytes(4096) + b"end of block"
    w[0] = ZERO
    out["dynamic-one-block"] = bytes(w.build().data)

    out["static-empty"] = bytes(VdiWriter(0, image_type=STATIC).build().data)
    return out


def main() -> None:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus" / "vdi"
    outdir.mkdir(parents=True, exist_ok=True)
    made = seeds()
    for name, data in made.items():
        (outdir / f"{name}.vdi").write_bytes(data)
    print(f"{len(made)} seeds, {sum(map(len, made.values()))} bytes in {outdir}")


if __name__ == "__main__":
    main()
