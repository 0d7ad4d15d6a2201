""".ci/large_files.py, the CI check that no file over 1 MiB is committed outside fuzz/corpus/,
run as .ci/run runs it: against throwaway git repositories, then against this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
from conftest import require_tool

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".ci" / "large_files.py"
MiB = 1 << 20


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(repo)], capture_output=True, text=True, timeout=60
    )


def make_repo(root: Path, files: Dict[str, int]) -> Path:
    """A git repository at ``root`` with ``files`` (path: size in bytes) added and committed."""
    git = require_tool("git")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run([git, "init", "-q", str(root)], check=True, env=env)
    for name, size in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    subprocess.run([git, "-C", str(root), "add", "-A"], check=True, env=env)
    subprocess.run([git, "-C", str(root), "commit", "-q", "-m", "files"], check=True, env=env)
    return root


def test_small_files_and_fuzz_corpora_pass(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "README.md": 100,
            "exactly-1MiB.bin": MiB,  # the limit itself is allowed: "over 1 MiB" fails
            "fuzz/corpus/vhdx/big.vhdx": 3 * MiB,
            "empty": 0,
        },
    )
    proc = check(repo)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_large_file_fails_naming_it_and_its_size(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "o.raw": 5 * MiB,
            "docs/a b.img": MiB + 1,
            "fuzz/corpusx/not-a-corpus.bin": 2 * MiB,  # only fuzz/corpus/ itself may
            "small.txt": 10,
        },
    )
    proc = check(repo)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 3, proc.stderr
    assert lines[0].startswith("large_files.py: o.raw is 5.0 MiB (5242880 bytes): ")
    assert "fuzz/corpusx/not-a-corpus.bin is 2.0 MiB (2097152 bytes)" in lines[1]
    assert "docs/a b.img is 1.0 MiB (1048577 bytes)" in lines[2]
    assert "git rm --cached 'docs/a b.img'" in lines[2]
    assert "fuzz/corpus/" in lines[0]


def test_the_index_counts_not_the_work_tree(tmp_path: Path) -> None:
    # A large file staged and then shrunk in the work tree is still what would be committed;
    # a large untracked file is not.
    repo = make_repo(tmp_path / "r", {"disk.raw": 2 * MiB})
    (repo / "disk.raw").write_bytes(b"small now")
    (repo / "untracked.raw").write_bytes(bytes(3 * MiB))
    proc = check(repo)
    assert proc.returncode == 1
    assert "disk.raw is 2.0 MiB" in proc.stderr and "untracked" not in proc.stderr


def test_not_a_repository_is_an_error_not_a_pass(tmp_path: Path) -> None:
    require_tool("git")
    proc = check(tmp_path / "missing")
    assert proc.returncode == 2
    assert proc.stderr.startswith("large_files.py: git ls-files failed in ")


def test_this_checkout_passes() -> None:
    require_tool("git")
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout (an sdist): .ci/run checks the repository")
    proc = check(REPO)
    assert (proc.returncode, proc.stderr) == (0, "")
