"""Start-up (issue 18 §4): ``pyimagecache --version`` and an ``ensure`` cache hit import only
what they use, and the fast path they take answers exactly what the full path would.
Timings are bench/bench_startup.py's; these tests hold the imports and the answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyimagecache
from pyimagecache import cache, catalog
from pyimagecache._jsonfast import loads
from pyimagecache.contentdigest import file_content_digest
from pyimagecache.hit import entry_path, find_hit

ROOT = Path(__file__).resolve().parent.parent

#: What neither --version nor a hit may import: each costs more than the hit's own work.
HEAVY = ("argparse", "json", "re", "typing", "pathlib", "dataclasses", "logging", "urllib3")


def run_isolated(args: List[str], env: Dict[str, str]) -> Dict[str, Any]:
    """Run the CLI's main() in a fresh ``python -S`` (no site, so no editable-install hook
    imports anything first) and report what it printed and which modules it imported."""
    code = (
        "import io, sys, json\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "before = set(sys.modules)\n"
        "out = io.StringIO(); real = sys.stdout; sys.stdout = out\n"
        "from pyimagecache.cli import main\n"
        f"code = main({args!r})\n"
        "sys.stdout = real\n"
        "print(json.dumps({'code': code, 'out': out.getvalue(),"
        " 'imported': sorted(set(sys.modules) - before)}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    result: Dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def stand_in_entry(cache_dir: Path, alias: str, arch: str) -> Path:
    """A cache entry for an embedded alias, published by the library's own publish step (this
    machine cannot download the real image; a hit only looks at the entry)."""
    request = cache.resolve(alias, arch=arch)
    cache_dir.mkdir(parents=True, exist_ok=True)
    raw = cache_dir / request.names.raw
    scratch = cache_dir / ".stand-in"
    scratch.write_bytes(b"\xeb\x63\x90" + bytes(65533))
    digests = {a: v for a, v in request.expected.items()}
    cache._publish(request, scratch, raw, digests, "raw", file_content_digest(scratch))
    return raw


@pytest.fixture
def clean_env(tmp_path: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYIMAGECACHE_")}
    env["HOME"] = str(tmp_path)
    return env


def test_version_imports_nothing_heavy(clean_env: Dict[str, str]) -> None:
    result = run_isolated(["--version"], clean_env)
    assert result["code"] == 0 and result["out"] == f"pyimagecache {pyimagecache.__version__}\n"
    assert not [m for m in result["imported"] if m.split(".")[0] in HEAVY], result["imported"]


def test_version_says_what_argparse_said() -> None:
    from pyimagecache.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0  # and both print "pyimagecache <version>" (checked above)


def test_a_hit_imports_nothing_heavy_and_prints_the_path(
    tmp_path: Path, clean_env: Dict[str, str]
) -> None:
    raw = stand_in_entry(tmp_path / "c", "debian-12", "amd64")
    args = ["ensure", "debian-12", "--arch", "amd64", "--cache-dir", str(tmp_path / "c")]
    result = run_isolated(args, clean_env)
    assert result["code"] == 0 and result["out"] == f"{raw}\n"
    assert not [m for m in result["imported"] if m.split(".")[0] in HEAVY], result["imported"]
    assert "pyimagecache.cache" not in result["imported"]
    assert "pyimagecache.catalog" not in result["imported"]  # the parsed catalog is not needed


@pytest.mark.parametrize(
    "extra",
    [["-q"], ["--quiet", "--debug"], ["--cache-dir={c}"], ["--arch=x86_64"]],
    ids=["quiet", "quiet-debug", "equals", "machine-spelling"],
)
def test_the_spellings_a_hit_understands(
    tmp_path: Path, clean_env: Dict[str, str], extra: List[str]
) -> None:
    cache_dir = tmp_path / "c"
    raw = stand_in_entry(cache_dir, "debian-12", "amd64")
    words = [w.format(c=cache_dir) for w in extra]
    if not any(w.startswith("--cache-dir") for w in words):
        words += ["--cache-dir", str(cache_dir)]
    if not any(w.startswith("--arch") for w in words):
        words += ["--arch", "amd64"]
    result = run_isolated(["ensure", "debian-12", *words], clean_env)
    assert result["out"] == f"{raw}\n" and "argparse" not in result["imported"]


@pytest.mark.parametrize(
    "words",
    [
        ["--json"],
        ["--sha256", "ab" * 32],
        ["--offline"],
        ["--cache"],  # an abbreviation: argparse's call
        ["--arch", "amd64"],  # given twice
        ["extra-word"],
    ],
    ids=["json", "digest", "other-option", "abbreviation", "repeated", "two-images"],
)
def test_anything_else_takes_the_full_path(
    tmp_path: Path, clean_env: Dict[str, str], words: List[str]
) -> None:
    cache_dir = tmp_path / "c"
    stand_in_entry(cache_dir, "debian-12", "amd64")
    args = ["ensure", "debian-12", "--arch", "amd64", "--cache-dir", str(cache_dir), *words]
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
        "from pyimagecache.cli._hit import ensure_hit; "
        f"print(ensure_hit({args[1:]!r}))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "None"


def test_full_path_cases_still_say_what_is_wrong(tmp_path: Path, clean_env: Dict[str, str]) -> None:
    cache_dir = tmp_path / "c"
    raw = stand_in_entry(cache_dir, "debian-12", "amd64")

    def cli(*words: str, env: Dict[str, str] = clean_env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyimagecache", *words], capture_output=True, text=True, env=env
        )

    bad_arch = cli("ensure", "debian-12", "--arch", "sparc", "--cache-dir", str(cache_dir))
    assert bad_arch.returncode == 2 and "usage: pyimagecache ensure" in bad_arch.stderr
    empty_dir = cli("ensure", "debian-12", "--arch", "amd64", "--cache-dir", "")
    assert empty_dir.returncode == 2
    unknown = cli("ensure", "debian-1", "--arch", "amd64", "--cache-dir", str(cache_dir))
    assert unknown.returncode == 1 and "did you mean" in unknown.stderr
    # A changed raw is no hit: the full path says so (here: offline, it cannot rebuild).
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 10**9))
    os.chmod(raw, 0o644)
    with open(raw, "r+b") as f:
        f.write(b"x")
    changed = cli(
        "ensure", "debian-12", "--arch", "amd64", "--offline", "--cache-dir", str(cache_dir)
    )
    assert changed.returncode == 1 and "changed since it was published" in changed.stderr
    assert find_hit("debian-12", cache_dir, "amd64") is None
    # A user catalog: the full path parses and validates it.
    user = {**clean_env, "PYIMAGECACHE_CATALOG": str(tmp_path / "nope.json")}
    missing = cli("ensure", "debian-12", "--cache-dir", str(cache_dir), env=user)
    assert missing.returncode == 1 and "nope.json" in missing.stderr


def test_the_fast_path_names_every_pin_as_ensure_does(tmp_path: Path) -> None:
    for alias, info in catalog.load_catalog().items():
        for arch in info.arch:
            expected = tmp_path / cache.resolve(alias, arch=arch).names.raw
            assert entry_path(alias, tmp_path, arch) == str(expected), (alias, arch)
    assert entry_path("no-such-alias", tmp_path, "amd64") is None
    assert entry_path("debian-12", tmp_path, "sparc") is None


def test_in_process_a_hit_takes_well_under_a_millisecond(tmp_path: Path) -> None:
    """Issue 17's bar: the hit, now that it also checks the record, stays under 1 ms (the
    catalog parsed once, as in a long-lived process)."""
    stand_in_entry(tmp_path / "c", "debian-12", "amd64")
    pyimagecache.ensure("debian-12", tmp_path / "c", arch="amd64")  # parses the catalog
    best = min(
        _timed(lambda: pyimagecache.ensure("debian-12", tmp_path / "c", arch="amd64"))
        for _ in range(50)
    )
    assert best < 1e-3, best


def _timed(call: Any) -> float:
    import time

    start = time.perf_counter()
    call()
    return time.perf_counter() - start


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["", " ", "\n\t", "\r\n  "]))
def test_the_fast_json_decoder_is_json(value: Any, pad: str) -> None:
    text = pad + json.dumps(value) + pad
    assert loads(text) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_the_fast_json_decoder_refuses_what_json_refuses(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            loads(text)
    else:
        assert repr(loads(text)) == repr(expected)
