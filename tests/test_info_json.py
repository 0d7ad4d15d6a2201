"""``pyimagecache info --json`` against ``qemu-img info --output=json`` of the same file, for
every format: a script written against qemu-img reads the same keys, with the same values and
value types (qemu-img's format names too: ``vpc`` for VHD); extra keys may be added."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import require_tool

pytestmark = pytest.mark.qemu

MiB = 1 << 20

# (id, qemu-img create format, options, qemu-io commands after creating)
IMAGES = [
    ("raw", "raw", [], ["write -P 0x11 0 64k"]),
    ("qcow2", "qcow2", [], ["write -P 0x11 0 64k", "write -P 0x22 3M 1M"]),
    ("qcow2-v2", "qcow2", ["compat=0.10"], ["write -P 0x33 1M 64k"]),
    ("qcow2-lazy", "qcow2", ["lazy_refcounts=on", "cluster_size=4096"], ["write 0 4k"]),
    ("vmdk-sparse", "vmdk", [], ["write -P 0x44 0 128k"]),
    ("vmdk-stream", "vmdk", ["subformat=streamOptimized"], []),
    ("vpc-dynamic", "vpc", [], ["write -P 0x55 2M 64k"]),
    ("vpc-fixed", "vpc", ["subformat=fixed"], ["write -P 0x55 0 64k"]),
    ("vhdx", "vhdx", [], ["write -P 0x66 1M 1M"]),
    ("vhdx-fixed", "vhdx", ["subformat=fixed"], []),
    ("vdi", "vdi", [], ["write -P 0x77 0 1M"]),
    ("vdi-static", "vdi", ["static=on"], []),
]


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout


def ours(path: Path) -> Dict[str, Any]:
    out = run(sys.executable, "-m", "pyimagecache", "info", "--json", str(path))
    facts: Dict[str, Any] = json.loads(out)
    return facts


def theirs(path: Path, fmt: str) -> Dict[str, Any]:
    facts: Dict[str, Any] = json.loads(
        run("qemu-img", "info", "-f", fmt, "--output=json", str(path))
    )
    return facts


def same(mine: Any, qemu: Any, where: str, problems: List[str]) -> None:
    """Every key qemu gives, with the same value and type (recursively)."""
    if isinstance(qemu, dict):
        if not isinstance(mine, dict):
            problems.append(f"{where}: {type(mine).__name__}, qemu has an object")
            return
        for key, value in qemu.items():
            if key not in mine:
                problems.append(f"{where}.{key}: missing")
            else:
                same(mine[key], value, f"{where}.{key}", problems)
    elif isinstance(qemu, list):
        if not isinstance(mine, list) or len(mine) != len(qemu):
            problems.append(f"{where}: {mine!r} != {qemu!r}")
            return
        for i, (a, b) in enumerate(zip(mine, qemu)):
            same(a, b, f"{where}[{i}]", problems)
    elif type(mine) is not type(qemu) or mine != qemu:
        problems.append(f"{where}: {mine!r} ({type(mine).__name__}) != {qemu!r}")


@pytest.mark.parametrize("name, fmt, options, writes", IMAGES, ids=[i[0] for i in IMAGES])
def test_info_json_reads_as_qemu_img_info(
    tmp_path: Path, name: str, fmt: str, options: List[str], writes: List[str]
) -> None:
    require_tool("qemu-img")
    path = tmp_path / f"disk.{fmt}"
    args = ["qemu-img", "create", "-q", "-f", fmt]
    if options:
        args += ["-o", ",".join(options)]
    run(*args, str(path), str(8 * MiB))
    for command in writes:
        run(require_tool("qemu-io"), "-f", fmt, "-c", command, str(path))
    if fmt == "qcow2":
        run("qemu-img", "snapshot", "-c", "first", str(path))  # an internal snapshot too
    problems: List[str] = []
    same(ours(path), theirs(path, fmt), "info", problems)
    assert not problems, problems


def test_info_json_of_a_qcow2_with_a_backing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("qemu-img")
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", str(base), str(4 * MiB))
    monkeypatch.chdir(tmp_path)  # qemu-img names a relative backing file as given
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2")
    problems: List[str] = []
    same(ours(top), theirs(top, "qcow2"), "info", problems)
    assert not problems, problems


def test_human_info_says_what_qemu_img_says(tmp_path: Path) -> None:
    require_tool("qemu-img")
    path = tmp_path / "disk.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", str(path), str(8 * MiB))
    out = run(sys.executable, "-m", "pyimagecache", "info", str(path))
    assert "file format: vpc" in out.splitlines()
