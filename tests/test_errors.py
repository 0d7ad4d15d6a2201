"""Every error survives a process boundary with its attributes; no CLI input gives a traceback."""

from __future__ import annotations

import concurrent.futures
import inspect
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from pyimagecache import errors

CLASSES = sorted(
    (
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, errors.ImageCacheError)
    ),
    key=lambda c: c.__name__,
)

# Arguments for the classes with their own __init__; the others take a message.
ARGS: Dict[str, Any] = {
    "UnsupportedFormatError": (("disk.img", "qed", ("raw", "qcow2")), {}),
    "ImageFileError": ((2, "No such file or directory", "/images/disk.img"), {}),
    "InsufficientSpaceError": (("/cache/x.raw", 10, 3, "converting"), {}),
    "MissingExtraError": (("zstd data", "zstd", "zstandard"), {}),
    "DownloadError": (
        ("boom",),
        {"url": "https://h/x", "path": "/p", "done": 5, "total": 9, "status": 404},
    ),
    "ChecksumMismatchError": (("https://h/x", "a" * 128, "b" * 128, "/p", "sha512"), {}),
    "RegistryError": (
        ("denied",),
        {
            "registry": "r.example",
            "repository": "img",
            "url": "https://r.example/v2/",
            "status": 403,
        },
    ),
    "ExternalReferenceError": (
        ("evil.qcow2 names a backing file",),
        {"reference": "/home/u/.ssh/id_ed25519", "source": "evil.qcow2"},
    ),
    "DigestConflictError": (
        ("typo",),
        {"entry": "/c/x.raw", "algorithm": "sha256", "given": "a" * 64, "recorded": "b" * 64},
    ),
    "ChangedEntryError": (("changed",), {"entry": "/c/x.raw", "change": "size 1 -> 2 bytes"}),
    "NotADiskError": (("x.qcow2 is an HTML document",), {"looks_like": "an HTML document"}),
    "NoMatchingPlatformError": (
        ("no riscv64",),
        {"platforms": ("linux/amd64", "linux/arm64"), "registry": "r.example", "repository": "img"},
    ),
}


def make(cls: type) -> errors.ImageCacheError:
    # A subclass without its own __init__ takes what the nearest base that has one takes.
    maker = next((c.__name__ for c in cls.__mro__ if c.__name__ in ARGS), "")
    args, kwargs = ARGS.get(maker, (("something specific went wrong",), {}))
    exc: errors.ImageCacheError = cls(*args, **kwargs)
    return exc


def test_every_class_with_its_own_init_is_covered() -> None:
    own = {c.__name__ for c in CLASSES if "__init__" in vars(c)}
    assert own == set(ARGS), own ^ set(ARGS)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_pickles_with_its_attributes(cls: type) -> None:
    exc = make(cls)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc) and back.args == exc.args
    assert vars(back) == vars(exc)
    if isinstance(exc, OSError):  # errno, strerror and filename live outside __dict__
        assert (back.errno, back.strerror, back.filename) == (2, exc.strerror, "/images/disk.img")
    elif cls.__name__ in ARGS:
        assert vars(exc), "the attributes it was made with"
    assert isinstance(back, errors.ImageCacheError)


def _raise_in_worker(name: str) -> None:
    raise make(getattr(errors, name))


def test_raised_in_a_worker_process_caught_in_the_parent() -> None:
    import multiprocessing

    # spawn, not fork: the test process runs threads, and a real worker pool starts afresh.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        for name in ("ChecksumMismatchError", "MissingExtraError", "InsufficientSpaceError"):
            with pytest.raises(getattr(errors, name)) as info:
                pool.submit(_raise_in_worker, name).result()
            assert vars(info.value) == vars(make(getattr(errors, name)))


def test_checksum_mismatch_names_the_algorithm() -> None:
    exc = make(errors.ChecksumMismatchError)
    assert str(exc).startswith("SHA-512 mismatch") and exc.algorithm == "sha512"


# -- the command line never tracebacks ----------------------------------------------------------

BAD_USAGE: List[List[str]] = [
    ["fetch", "http://127.0.0.1:9/x", "d", "--timeout", "0"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--timeout", "-3"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--timeout", "nan"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--timeout", "soon"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--retries", "-1"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--retries", "2.5"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--sha256", "abc"],
    ["fetch", "http://127.0.0.1:9/x", "d", "--sha512", "ab" * 32],
    ["fetch", "http://127.0.0.1:9/x", "d", "--ca-bundle", "/nonexistent/ca.pem"],
    ["ensure", "debian-12", "--sha256", "xyz"],
    ["ensure", "debian-12", "--timeout", "0"],
    ["ensure", "debian-12", "--retries", "-1"],
    ["copy", "a", "b", "--size", "lots"],
    ["convert", "a", "b", "--workers", "0"],
]


def cli(*args: str, env: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyimagecache", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("argv", BAD_USAGE, ids=lambda a: " ".join(a[:1] + a[3:]))
def test_bad_values_are_usage_errors(argv: List[str]) -> None:
    proc = cli(*argv)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("pyimagecache ") and ": error: argument " in lines[-1], lines
    assert proc.stdout == ""


def test_bad_environment_is_one_error_line(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, PYIMAGECACHE_OFFLINE="perhaps", PYIMAGECACHE_CACHE_DIR=str(tmp_path))
    proc = cli("ensure", "https://example.invalid/x.raw", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc
    assert proc.stderr.strip().splitlines() == [
        "pyimagecache: error: PYIMAGECACHE_OFFLINE='perhaps': expected 1 or 0"
    ]


def test_two_stages_draw_two_lines_on_a_terminal() -> None:
    import io

    from pyimagecache.cli._progressbar import StageBars

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bars = StageBars("debian-12", stream=out)
    download, convert = bars.stage("download"), bars.stage("convert")
    download(10 << 20, 100 << 20)
    convert(1 << 20, None)
    download(20 << 20, 100 << 20)
    bars.close()
    text = out.getvalue()
    # Each redraw goes back to the first line (cursor up) and rewrites both stages.
    assert (
        text.count("\x1b[1A") == 1
        and "download debian-12" in text
        and "convert  debian-12" in text  # stage names aligned
    )
    last = text.rsplit("\r", 1)[-1]
    assert "20.0 MiB/100.0 MiB" in last and "convert  debian-12     1.0 MiB" in last
