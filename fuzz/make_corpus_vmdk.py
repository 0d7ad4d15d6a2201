"""Write the VMDK seed corpus (fuzz/corpus/vmdk/) with the test suite's VMDK writer, plus
descriptors naming ``flat.img`` (which fuzz_vmdk.py writes next to each input).

Small grains (8 sectors) and tables (16 entries) keep each seed a few KiB while covering every
shape: monolithicSparse with zero grains and shuffled grains, streamOptimized the VMware way
(GD_AT_END, footer) and the qemu way, descriptors of flat, VMFS and zero extents. Deterministic:
re-running rewrites identical files.

    python fuzz/make_corpus_vmdk.py [OUTDIR]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from vmdkwriter import ZERO_GRAIN, VmdkWriter, descriptor_text  # noqa: E402


def seeds() -> Dict[str, bytes]:
    rng = random.Random(2024)
    out: Dict[str, bytes] = {}

    def fill(w: VmdkWriter) -> bytes:
        n = w.nb_grains
        w[0] = rng.randbytes(w.grain_length(0) // 2)
        w[1 % n] = b"boot " * (w.grain_length(1 % n) // 5)
        if w.zero_grain:
            w[2 % n] = ZERO_GRAIN
        w[n - 1] = b"end of disk"
        return w.build().bytes()

    small = {"grain_sectors": 8, "gtes_per_gt": 16}
    out["sparse"] = fill(VmdkWriter(24 * 4096, **small))  # type: ignore[arg-type]
    out["sparse-zero-grain-shuffled"] = fill(
        VmdkWriter(20 * 4096 + 1024, zero_grain=True, shuffle=1, rgd=False, **small)  # type: ignore[arg-type]
    )
    out["sparse-1-sector-grains"] = fill(VmdkWriter(40 * 512, grain_sectors=1, gtes_per_gt=4))
    out["stream-gd-at-end"] = fill(VmdkWriter(24 * 4096, stream=True, **small))  # type: ignore[arg-type]
    out["stream-qemu-layout"] = fill(
        VmdkWriter(20 * 4096 + 512, stream=True, gd_at_end=False, **small)  # type: ignore[arg-type]
    )
    out["stream-shuffled"] = fill(VmdkWriter(18 * 4096, stream=True, shuffle=2, **small))  # type: ignore[arg-type]
    out["stream-empty-64m"] = VmdkWriter(64 << 20, stream=True, grain_sectors=8).build().bytes()
    out["descriptor-flat"] = descriptor_text(
        "monolithicFlat", ['RW 16 FLAT "flat.img" 0'], extra='ddb.uuid = "60 00 c2 9a"\n'
    )
    out["descriptor-two-flat"] = descriptor_text(
        "twoGbMaxExtentFlat",
        ['RW 8 FLAT "flat.img" 0', 'RDONLY 7 FLAT "flat.img" 9', "RW 5 ZERO"],
    )
    out["descriptor-vmfs"] = descriptor_text("vmfs", ['RW 16 VMFS "flat.img"'])
    return out


def main() -> None:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus" / "vmdk"
    outdir.mkdir(parents=True, exist_ok=True)
    total = 0
    made = seeds()
    for name, data in made.items():
        (outdir / f"{name}.vmdk").write_bytes(data)
        total += len(data)
    print(f"{len(made)} seeds, {total} bytes in {outdir}")


if __name__ == "__main__":
    main()
