"""Write the seed corpus (fuzz/corpus/*.qcow2) with the test suite's qcow2 writer.

Seeds are small (mostly 512-byte clusters) and cover every shape the reader supports, so the
fuzzer starts from deep inside the format rather than from the magic check. Deterministic:
re-running rewrites identical files.

    python fuzz/make_corpus.py [OUTDIR]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from qcow2writer import Compressed, Data, Qcow2Writer, Sub, Zero  # noqa: E402


def seeds() -> Dict[str, bytes]:
    rng = random.Random(2024)
    out: Dict[str, bytes] = {}

    def mixed(w: Qcow2Writer) -> Qcow2Writer:
        cs = w.cluster_size
        n = w.nb_clusters
        w[0] = Data(rng.randbytes(cs // 2))
        w[1 % n] = Compressed(b"boot " * (cs // 5))
        w[2 % n] = Compressed(rng.randbytes(cs // 8) + bytes(cs // 2))
        if w.version == 3:
            w[3 % n] = Zero()
            w[4 % n] = Zero(preallocated=True)
        w[n - 1] = Data(b"end of disk")
        return w

    for version in (2, 3):
        out[f"v{version}-deflate-512"] = (
            mixed(Qcow2Writer(9 * 512, cluster_bits=9, version=version)).build().bytes()
        )
    out["v3-zstd-512"] = (
        mixed(Qcow2Writer(8 * 512, cluster_bits=9, compression="zstd")).build().bytes()
    )
    out["v3-odd-size"] = mixed(Qcow2Writer(7 * 512 + 77, cluster_bits=9)).build().bytes()
    out["v3-refcount64"] = (
        mixed(Qcow2Writer(6 * 512, cluster_bits=9, refcount_order=6)).build().bytes()
    )
    out["v3-4k"] = mixed(Qcow2Writer(6 * 4096, cluster_bits=12)).build().bytes()

    w = Qcow2Writer(2 * 16384, cluster_bits=14, extended_l2=True, compression="zstd")
    w[0] = Sub(rng.randbytes(512) + bytes(16384 - 512), alloc=0x0000000F, zero=0xF0F00000)
    w[1] = Compressed(b"extended " * 1000, frames=2)
    out["v3-extended-l2"] = w.build().bytes()

    w = Qcow2Writer(40 * 512, cluster_bits=9)
    for c in range(0, 40, 2):
        w[c] = Compressed(rng.randbytes(40) + bytes(472))  # packed: shared sectors, crossings
    out["v3-packed-compressed"] = w.build().bytes()

    w = mixed(Qcow2Writer(8 * 512, cluster_bits=9))
    w.snapshot("one")
    w[5] = Data(b"after")
    w.snapshot("two")
    w[0] = Compressed(b"active" * 80)
    out["v3-snapshots"] = w.build().bytes()

    w = mixed(
        Qcow2Writer(6 * 512, cluster_bits=9, backing_file="missing.raw", backing_format="raw")
    )
    out["v3-backing-missing"] = w.build().bytes()

    w = Qcow2Writer(4 * 4096, cluster_bits=12, dirty=True, lazy_refcounts=True)
    w[3] = Compressed(b"last" * 128, extra_sectors=3)  # sector count runs past EOF (iotest 214)
    out["v3-dirty-eof-compressed"] = w.build().bytes()

    out["v3-empty-64m"] = Qcow2Writer(64 << 20, cluster_bits=12).build().bytes()
    return out


def main() -> None:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    outdir.mkdir(parents=True, exist_ok=True)
    total = 0
    made = seeds()
    for name, data in made.items():
        (outdir / f"{name}.qcow2").write_bytes(data)
        total += len(data)
    print(f"{len(made)} seeds, {total} bytes in {outdir}")


if __name__ == "__main__":
    main()
