#!/usr/bin/env python3
"""Fail when a file over 1 MiB is committed outside fuzz/corpus/.

A disk image committed by mistake stays in every clone forever; the fuzz corpora are the only
large files the repository means to hold. Sizes are those of the blobs in git's index (what is
committed), not of the files in the work tree.

Usage: large_files.py [REPO]   (default: the current directory). Exit 1 naming each file and
its size; exit 2 when git fails.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import List, Tuple

LIMIT = 1 << 20
ALLOWED_UNDER = ("fuzz/corpus/",)
_GITLINK = b"160000"  # a submodule: a commit, not a file of ours


class GitError(Exception):
    pass


def git(repo: str, *args: str, stdin: bytes = b"") -> bytes:
    try:
        proc = subprocess.run(["git", "-C", repo, *args], input=stdin, capture_output=True)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise GitError(f"git {args[0]} failed in {repo}: {err}")
    return proc.stdout


def oversized(repo: str, limit: int = LIMIT) -> List[Tuple[str, int]]:
    """(path, bytes) of every file in repo's index larger than ``limit`` outside the allowed
    directories, largest first."""
    paths: List[str] = []
    objects: List[bytes] = []
    for record in git(repo, "ls-files", "--stage", "-z").split(b"\0"):
        if not record:
            continue
        meta, path = record.split(b"\t", 1)
        mode, obj, _stage = meta.split(b" ")
        name = os.fsdecode(path)
        if mode == _GITLINK or name.startswith(ALLOWED_UNDER):
            continue
        paths.append(name)
        objects.append(obj)
    if not objects:
        return []
    sizes = git(repo, "cat-file", "--batch-check=%(objectsize)", stdin=b"\n".join(objects) + b"\n")
    found = [(p, int(s)) for p, s in zip(paths, sizes.split()) if int(s) > limit]
    return sorted(found, key=lambda item: (-item[1], item[0]))


def main(argv: List[str]) -> int:
    repo = argv[1] if len(argv) > 1 else "."
    try:
        found = oversized(repo)
    except GitError as exc:
        print(f"large_files.py: {exc}", file=sys.stderr)
        return 2
    for path, size in found:
        print(
            f"large_files.py: {path} is {size / (1 << 20):.1f} MiB ({size} bytes): files over "
            f"1 MiB may be committed only under {', '.join(ALLOWED_UNDER)} "
            f"(remove it: git rm --cached {shlex.quote(path)})",
            file=sys.stderr,
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
