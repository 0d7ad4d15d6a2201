"""SECURITY.md promises nothing untested: every test it names exists, and every guarantee
(each bullet under "What each path guarantees") names at least one."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "SECURITY.md").read_text()
REFERENCE = re.compile(r"`(tests/test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`")


def _tests_of(path: Path) -> Set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    }


def test_every_named_test_exists() -> None:
    found: Dict[str, Set[str]] = {}
    named = REFERENCE.findall(DOC)
    assert len(named) >= 40, len(named)
    for file, test in named:
        if file not in found:
            path = ROOT / file
            assert path.exists(), file
            found[file] = _tests_of(path)
        assert test in found[file], f"SECURITY.md names {file}::{test}, which does not exist"


def test_every_guarantee_names_a_test() -> None:
    section = DOC.split("## What each path guarantees", 1)[1].split("## What is out of scope")[0]
    bullets = [b for b in re.split(r"\n(?=- )", section) if b.startswith("- ")]
    assert len(bullets) >= 12, len(bullets)
    for bullet in bullets:
        assert REFERENCE.search(bullet), f"no test named for: {bullet[:80]}"
