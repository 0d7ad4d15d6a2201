"""Write the VHD seed corpus (fuzz/corpus/vhd/) with the test suite's VHD writer, plus, when
qemu-img is installed, two small images qemu makes itself (their timestamps and UUIDs differ
from run to run; the writer's seeds are identical every time).

    python fuzz/make_corpus_vhd.py [OUTDIR]
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from vhdwriter import FIXED, Block, VhdWriter  # noqa: E402


def seeds() -> Dict[str, bytes]:
    rng = random.Random(2025)
    out: Dict[str, bytes] = {}

    w = VhdWriter(8 * 4096, block_size=4096)
    w[0] = Block(rng.randbytes(600))
    w[3] = Block(b"\xab" * 4096)
    w[7] = Block(b"end of disk")
    out["dynamic-4k"] = bytes(w.build().data)

    w = VhdWriter(6 * 4096, block_size=4096, order=[5, 2, 0], gap_sectors=1)
    w[0] = Block(rng.randbytes(100), [True, False, True, True, False, False, True, False])
    w[2] = Block(b"partial", [False] * 8)
    w[5] = Block(rng.randbytes(4096), [rng.random() < 0.5 for _ in range(8)])
    out["dynamic-bitmaps-out-of-order"] = bytes(w.build().data)

    w = VhdWriter(10 * 512, block_size=512, max_table_entries=12, creator=b"win ")
    for i in (0, 4, 9):
        w[i] = Block(rng.randbytes(512))
    out["dynamic-512-extra-entries"] = bytes(w.build().data)

    w = VhdWriter(2 * 65536 - 512, block_size=65536, creator=b"vpc ", chs=(1, 4, 63))
    w[1] = Block(b"last block" * 10)
    out["dynamic-64k-chs"] = bytes(w.build().data)

    w = VhdWriter(16 * 512, disk_type=FIXED)
    w.fixed_data = rng.randbytes(3000)
    out["fixed-8k"] = bytes(w.build().data)

    w = VhdWriter(2 * 4096, block_size=4096, disk_type=4, parent_name="parent.vhd")
    out["differencing"] = bytes(w.build().data)
    return out


def qemu_seeds() -> Dict[str, bytes]:
    if shutil.which("qemu-img") is None:
        return {}
    out: Dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in (("qemu-dynamic-empty", "subformat=dynamic"),
                           ("qemu-fixed-16k", "subformat=fixed,force_size=on")):  # fmt: skip
            path = Path(tmp) / f"{name}.vhd"
            size = "16k" if "fixed" in name else "64M"
            subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o", opts, str(path), size],
                           check=True)  # fmt: skip
            out[name] = path.read_bytes()
    return out


def main() -> None:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus" / "vhd"
    outdir.mkdir(parents=True, exist_ok=True)
    made = {**seeds(), **qemu_seeds()}
    for name, data in made.items():
        (outdir / f"{name}.vhd").write_bytes(data)
    print(f"{len(made)} seeds, {sum(map(len, made.values()))} bytes in {outdir}")


if __name__ == "__main__":
    main()
