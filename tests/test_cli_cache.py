"""The list / ensure / copy / cache list / cache prune commands."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from ensureenv import Env, ImageServer, disk_image

from pyimagecache._lock import FileLock
from pyimagecache.cli import main
from pyimagecache.cli._output import human_bytes

MiB = 1 << 20


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    www = tmp_path / "www"
    www.mkdir()
    server = ImageServer(www)
    e = Env(tmp_path, server)
    monkeypatch.setenv("PYIMAGECACHE_CATALOG", str(e.catalog_path))
    monkeypatch.setenv("PYIMAGECACHE_CACHE_DIR", str(e.cache))
    yield e
    server.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: a usage error (exit 2)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_plain_and_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYIMAGECACHE_CATALOG", raising=False)
    embedded = json.loads(files("pyimagecache").joinpath("catalog.json").read_text())
    code, out, _ = run(capsys, "list")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == sorted(embedded)
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0 and json.loads(out) == embedded


def test_ensure_prints_only_the_path(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    image = disk_image()
    env.publish("cli", "cli.raw.gz", gzip.compress(image, compresslevel=1))
    code, out, err = run(capsys, "ensure", "cli", "--arch", "amd64")
    assert code == 0
    assert out == str(env.cache / "cli-20260601-1-amd64.raw") + "\n"
    assert Path(out.strip()).read_bytes() == image
    code, out2, _ = run(capsys, "ensure", "cli", "--arch", "amd64", "--cache-dir", str(env.cache))
    assert (code, out2) == (0, out)
    assert len(env.server.gets("cli.raw.gz")) == 1


def test_ensure_url_with_sha256(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    image = disk_image()
    (env.www / "u.raw").write_bytes(image)
    url = f"{env.server.base}/u.raw"
    code, _, err = run(capsys, "ensure", url, "--sha256", "2" * 64)
    assert code == 1 and err.startswith("pyimagecache: error: SHA-256 mismatch")
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "ensure", url, "--sha256", hashlib.sha256(image).hexdigest())
    assert code == 0 and Path(out.strip()).read_bytes() == image


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ensure", "no-such-alias"], "neither a catalog alias"),
        (["ensure", "cli", "--arch", "riscv64"], "no image for arch 'riscv64'"),
    ],
)
def test_ensure_errors_are_one_line(
    env: Env, capsys: pytest.CaptureFixture[str], argv: List[str], message: str
) -> None:
    env.publish("cli", "cli.raw", disk_image(), arches=("amd64",))
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("pyimagecache: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "base.raw"
    with open(src, "wb") as f:
        f.truncate(8 * MiB)
        f.write(b"boot")
    dst = tmp_path / "vm.raw"
    assert run(capsys, "copy", str(src), str(dst), "--size", "20G")[0] == 0
    assert dst.stat().st_size == 20 << 30
    with open(dst, "rb") as f:
        assert f.read(4) == b"boot"
    assert dst.stat().st_blocks * 512 < MiB
    dst.write_bytes(b"mine")
    code, _, err = run(capsys, "copy", str(src), str(dst), "--size", "1M")
    assert code == 1 and "smaller than the source" in err
    assert dst.read_bytes() == b"mine"
    code, _, err = run(capsys, "copy", str(src), str(dst), "--size", "lots")
    assert code == 2 and "invalid size 'lots'" in err  # a usage error, found while parsing
    assert run(capsys, "copy", str(src), str(dst))[0] == 0
    assert dst.stat().st_size == 8 * MiB


def test_copy_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "base.raw"
    src.write_bytes(b"boot" * 1024)
    seen: List[bool] = []
    from pyimagecache import diskcopy

    real = diskcopy.copy_disk

    def spy(*args: Any, **kwargs: Any) -> Path:
        seen.append(kwargs["sync"])
        return real(*args, **kwargs)

    monkeypatch.setattr(diskcopy, "copy_disk", spy)
    assert run(capsys, "copy", str(src), str(tmp_path / "a.raw"), "--sync")[0] == 0
    assert run(capsys, "copy", str(src), str(tmp_path / "b.raw"))[0] == 0
    assert seen == [True, False]
    assert (tmp_path / "a.raw").read_bytes() == src.read_bytes()


def fake_entry(cache: Path, stem: str, sidecar: Dict[str, Any], size: int = MiB) -> Path:
    cache.mkdir(exist_ok=True)
    raw = cache / (stem + ".raw")
    with open(raw, "wb") as f:
        f.truncate(size)
        f.write(b"x" * 4096)
    (cache / (raw.name + ".json")).write_text(json.dumps(sidecar))
    return raw


@pytest.fixture
def populated(env: Env) -> Dict[str, Path]:
    env.publish("deb", "deb.raw", disk_image(), snapshot="20260701-1")
    c = env.cache
    paths = {
        "pinned": fake_entry(c, "deb-20260701-1-amd64", {"alias": "deb", "url": "u"}),
        "old": fake_entry(
            c, "deb-20260101-1-amd64", {"alias": "deb", "snapshot": "20260101-1", "arch": "amd64"}
        ),
        "gone": fake_entry(c, "dropped-5-arm64", {}),
        "url": fake_entry(c, "x-0123456789ab", {"url": "https://e/x.raw", "alias": None}),
    }
    paths["old_source"] = c / "deb-20260101-1-amd64.qcow2"
    paths["old_source"].write_bytes(b"q")
    paths["old_lock"] = c / "deb-20260101-1-amd64.raw.lock"
    paths["old_lock"].write_bytes(b"")
    paths["partial"] = c / "deb-20260701-1-amd64.img.part"
    paths["partial"].write_bytes(b"p" * 100)
    paths["partial_meta"] = c / "deb-20260701-1-amd64.img.part.meta"
    paths["partial_meta"].write_bytes(b"{}")
    paths["temp"] = c / ".deb-20260701-1-amd64.raw.tmp-abcd1234"
    paths["temp"].write_bytes(b"t")
    paths["keep"] = c / "deb-20260701-1-amd64.qcow2"  # a kept source of a pinned entry
    paths["keep"].write_bytes(b"k")
    return paths


def test_cache_list(
    env: Env, populated: Dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "cache", "list", "--json")
    assert code == 0
    rows = {Path(r["path"]).name: r for r in json.loads(out)["entries"]}
    assert set(rows) == {
        p.name for k, p in populated.items() if k in ("pinned", "old", "gone", "url")
    }
    assert rows["deb-20260701-1-amd64.raw"]["pinned"] is True
    assert rows["deb-20260701-1-amd64.raw"]["snapshot"] == "20260701-1"
    assert rows["deb-20260101-1-amd64.raw"]["pinned"] is False
    assert rows["dropped-5-arm64.raw"]["pinned"] is False
    assert rows["x-0123456789ab.raw"]["pinned"] is None
    for r in rows.values():
        assert r["apparent_size"] == MiB and 0 < r["allocated_size"] <= MiB
    code, out, _ = run(capsys, "cache", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "APPARENT", "ALLOCATED", "SNAPSHOT", "STATUS"]
    assert any(
        line.startswith("deb-20260101-1-amd64.raw") and line.endswith("unpinned") for line in lines
    )


def test_cache_list_json_schema(
    env: Env, populated: Dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # A partial a live download holds, with the validators it resumes from.
    meta = {"url": "https://e/x.img", "etag": '"e1"', "last_modified": None, "total": 400}
    populated["partial_meta"].write_text(json.dumps(meta))
    with FileLock(env.cache / "deb-20260701-1-amd64.img.part.lock"):
        code, out, _ = run(capsys, "cache", "list", "--json")
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == [
        "cache_dir",
        "entries",
        "sources",
        "partials",
        "temporaries",
        "totals",
    ]
    assert doc["cache_dir"] == str(env.cache)
    entry_keys = {"path", "apparent_size", "allocated_size", "alias", "snapshot", "arch", "url"}
    entry_keys |= {"pinned", "created", "fallback_from"}
    assert all(set(e) == entry_keys for e in doc["entries"])
    sources = {Path(f["path"]).name: f for f in doc["sources"]}
    assert set(sources) == {"deb-20260101-1-amd64.qcow2", "deb-20260701-1-amd64.qcow2"}
    assert sources["deb-20260701-1-amd64.qcow2"] == {
        "path": str(populated["keep"]),
        "apparent_size": 1,
        "allocated_size": os.stat(populated["keep"]).st_blocks * 512,
        "entry": "deb-20260701-1-amd64",
    }
    (part,) = doc["partials"]
    assert part == {
        "path": str(populated["partial"]),
        "apparent_size": 100,
        "allocated_size": os.stat(populated["partial"]).st_blocks * 512,
        "entry": "deb-20260701-1-amd64",
        "url": "https://e/x.img",
        "total": 400,
        "in_use": True,
        "resumable": True,
    }
    assert [Path(t["path"]).name for t in doc["temporaries"]] == [populated["temp"].name]
    totals = doc["totals"]
    groups = {"entries": 4, "sources": 2, "partials": 1, "temporaries": 1}
    for group, count in groups.items():
        listed = doc[group]
        assert totals[group] == {
            "count": count,
            "apparent_size": sum(f["apparent_size"] for f in listed),
            "allocated_size": sum(f["allocated_size"] for f in listed),
        }
    assert totals["allocated_size"] == sum(totals[g]["allocated_size"] for g in groups)
    # Nobody holds it now: listed as resumable by the table, with the totals line.
    code, out, _ = run(capsys, "cache", "list")
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert rows["deb-20260701-1-amd64.img.part"].split()[1] == "partial"
    assert rows["deb-20260701-1-amd64.img.part"].endswith("resumable (25% of 400 B)")
    assert rows["deb-20260701-1-amd64.qcow2"].split()[1:2] == ["source"]
    size = {g: human_bytes(totals[g]["allocated_size"]) for g in groups}
    assert out.splitlines()[-1] == (
        f"total: 4 disks ({size['entries']}), 2 kept sources ({size['sources']}), "
        f"1 partial download ({size['partials']}), 1 temporary ({size['temporaries']}); "
        f"{human_bytes(totals['allocated_size'])} allocated"
    )


def test_cache_prune(
    env: Env, populated: Dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in env.cache.iterdir())
    code, out, _ = run(capsys, "cache", "prune", "--dry-run")
    assert code == 0 and "would remove" in out
    assert sorted(p.name for p in env.cache.iterdir()) == before
    expected_gone = ["old", "old_source", "gone", "partial", "partial_meta", "temp", "old_lock"]
    for key in expected_gone:
        if key != "old_lock":
            assert str(populated[key]) in out, key
    code, out, _ = run(capsys, "cache", "prune")
    assert code == 0
    for key, path in populated.items():
        assert path.exists() == (key not in expected_gone), key
    assert not (env.cache / "deb-20260101-1-amd64.raw.json").exists()
    assert (env.cache / "deb-20260701-1-amd64.raw.json").exists()


def test_cache_prune_skips_locked(
    env: Env, populated: Dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        FileLock(env.cache / "deb-20260101-1-amd64.raw.lock"),
        FileLock(env.cache / "deb-20260701-1-amd64.raw.lock"),
    ):
        code, out, _ = run(capsys, "cache", "prune")
    assert code == 0 and "in use" in out
    for key in ("old", "old_source", "partial", "temp"):
        assert populated[key].exists(), key
    assert not populated["gone"].exists()


def test_cache_commands_on_missing_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYIMAGECACHE_CACHE_DIR", str(tmp_path / "none"))
    code, out, _ = run(capsys, "cache", "list", "--json")
    assert code == 0 and json.loads(out)["entries"] == []
    assert json.loads(out)["totals"]["allocated_size"] == 0
    assert run(capsys, "cache", "prune")[0] == 0
    assert not (tmp_path / "none").exists()


# Not lzma: argparse's help formatter imports shutil, which imports bz2 and lzma (~1 ms).
HEAVY = ("urllib3", "tarfile", "pyimagecache.download", "pyimagecache.qcow2", "pyimagecache.unpack")


def test_ensure_hit_is_fast_and_imports_nothing_heavy(env: Env) -> None:
    env.publish("fast", "fast.raw", disk_image())
    cmd = [sys.executable, "-m", "pyimagecache", "ensure", "fast", "--arch", "amd64"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        again = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
        timings.append(time.perf_counter() - start)
        assert again.stdout == first.stdout
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd[1:]],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    imported = {
        line.split("|")[-1].strip()
        for line in traced.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    # The bar is 150 ms on an idle machine; shared CI cores get headroom.
    assert min(timings) < 0.5, timings


def test_list_into_a_closed_pipe_is_quiet() -> None:
    # `pyimagecache list | head -1`: the reader leaves early; no "error: Broken pipe" line.
    # The read end is closed before the child writes, so the broken pipe is certain.
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pyimagecache", "list"],
            stdout=write_fd,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_fd)
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 141
