"""``pyimagecache convert`` and ``pyimagecache info`` run as a user runs them: a subprocess,
with stdout/stderr on pipes (not a terminal), checking exit codes and every output line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional

import pytest
from qcow2writer import Compressed, Data, Qcow2Writer, Zero

from pyimagecache import qcow2

CS = 65536


def cli(*args: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "pyimagecache", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def image(path: Path, clusters: int = 40) -> bytes:
    """A mixed image of ``clusters`` 64 KiB clusters; returns its raw disk."""
    w = Qcow2Writer(clusters * CS - 1000)
    for c in range(clusters):
        if c % 4 == 0:
            w[c] = Data(bytes([c % 251 + 1]) * (CS // 2))
        elif c % 4 == 1:
            w[c] = Compressed(b"compress me " * 5000)
        elif c % 4 == 2:
            w[c] = Zero()
    built = w.build()
    built.save(path)
    return built.expected()


def corrupt_image(path: Path) -> None:
    """Valid header, a compressed cluster whose stream does not inflate."""
    w = Qcow2Writer(4 * CS)
    w[0] = Data(b"d" * CS)
    w[2] = Compressed(b"x" * CS, stream=b"\xff" * 200)
    w.build().save(path)


def bad_magic(path: Path) -> None:
    # convert and info open any format by its magic, and data with no known magic is raw (as
    # qemu-img sees it): the magic of a format with no reader is what must fail.
    path.write_bytes(b"QED\x00" + bytes(4092))


def bad_l1(path: Path) -> None:
    """An L1 entry pointing past the end of the file (info reads metadata only)."""
    w = Qcow2Writer(4 * CS)
    w[0] = Data(b"d" * CS)
    built = w.build()
    built.set_u64(built.l1_entry_offset(0), (1 << 63) | (1 << 40))
    built.save(path)


def error_lines(stderr: str) -> List[str]:
    return stderr.splitlines()


def assert_one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pyimagecache: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    return lines[0]


# -- convert ----------------------------------------------------------------------------------


def test_convert_writes_the_disk_and_prints_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "img.qcow2", tmp_path / "disk.raw"
    expected = image(src)
    proc = cli("convert", str(src), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    # stderr is a pipe, not a terminal: no progress bar, and nothing else to say
    assert proc.stderr == ""
    assert dst.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.raw", "img.qcow2"]


def test_convert_with_workers_and_relative_paths(tmp_path: Path) -> None:
    expected = image(tmp_path / "img.qcow2")
    proc = cli("convert", "img.qcow2", "out.raw", "--workers", "3", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert (tmp_path / "out.raw").read_bytes() == expected


def test_convert_corrupt_image_is_one_error_line_and_dst_untouched(tmp_path: Path) -> None:
    src, dst = tmp_path / "bad.qcow2", tmp_path / "out.raw"
    corrupt_image(src)
    dst.write_bytes(b"previous")
    line = assert_one_error_line(cli("convert", str(src), str(dst)))
    assert "compressed cluster 2" in line
    assert dst.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.qcow2", "out.raw"]


def test_convert_missing_source_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.qcow2"
    line = assert_one_error_line(cli("convert", str(missing), str(tmp_path / "out.raw")))
    assert str(missing) in line
    assert not (tmp_path / "out.raw").exists()


def test_convert_into_a_missing_directory_names_dst(tmp_path: Path) -> None:
    src, dst = tmp_path / "img.qcow2", tmp_path / "nodir" / "out.raw"
    image(src, clusters=2)
    line = assert_one_error_line(cli("convert", str(src), str(dst)))
    # The user named DST; the hidden temporary sibling is an implementation detail.
    assert str(dst) in line, line


def test_convert_past_the_file_size_limit_is_one_error_line(tmp_path: Path) -> None:
    # RLIMIT_FSIZE below the virtual size: the output cannot be sized (EFBIG; Python ignores
    # SIGXFSZ). The error names DST and no temporary file is left behind.
    resource = pytest.importorskip("resource")
    src, dst = tmp_path / "img.qcow2", tmp_path / "out.raw"
    image(src, clusters=64)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    proc = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "convert", str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        stdin=subprocess.DEVNULL,
    )
    line = assert_one_error_line(proc)
    assert str(dst) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.qcow2"]


@pytest.mark.parametrize("command", ["convert", "info"])
def test_directory_as_source_names_the_path(tmp_path: Path, command: str) -> None:
    src = tmp_path / "a-directory"
    src.mkdir()
    args = [command, str(src)] + ([str(tmp_path / "out.raw")] if command == "convert" else [])
    line = assert_one_error_line(cli(*args))
    assert str(src) in line, line


def test_error_stays_one_line_when_the_path_has_a_newline(tmp_path: Path) -> None:
    missing = tmp_path / "two\nlines.qcow2"
    line = assert_one_error_line(cli("info", str(missing)))
    assert "lines.qcow2" in line


def test_convert_progress_bar_draws_on_a_terminal(tmp_path: Path) -> None:
    # The counterpart of "no progress on a pipe": on a tty, stderr does get the bar.
    pty = pytest.importorskip("pty")
    src, dst = tmp_path / "img.qcow2", tmp_path / "disk.raw"
    image(src)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pyimagecache", "convert", str(src), str(dst)],
            stdout=subprocess.PIPE,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the terminal's other side is closed and drained
                break
            if not chunk:
                break
            out += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert b"img.qcow2" in out and b"100.0%" in out, out


# -- info -------------------------------------------------------------------------------------


def test_info_human_lines(tmp_path: Path) -> None:
    src = tmp_path / "img.qcow2"
    image(src)
    facts = qcow2.info(src)
    proc = cli("info", str(src))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    size = facts["virtual-size"]
    assert f"image: {src}" in lines
    assert "file format: qcow2" in lines
    assert any(ln.startswith("virtual size: ") and ln.endswith(f"({size} bytes)") for ln in lines)
    assert f"cluster_size: {CS}" in lines
    assert "    compat: 1.1" in lines
    assert "    compression-type: zlib" in lines
    for kind, nbytes in facts["allocation"].items():
        assert any(ln.startswith(f"    {kind}: {nbytes} bytes") for ln in lines), kind
    assert all(": " in ln or ln.endswith(":") for ln in lines), lines


def test_info_json_matches_the_api(tmp_path: Path) -> None:
    (tmp_path / "base.raw").write_bytes(b"b" * CS)
    w = Qcow2Writer(3 * CS, compression="zstd", backing_file="base.raw", backing_format="raw")
    w[1] = Compressed(b"z" * CS)
    src = tmp_path / "top.qcow2"
    w.build().save(src)
    proc = cli("info", "--json", str(src))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    got = json.loads(proc.stdout)
    want = qcow2.info(src)
    assert got["virtual-size"] == want["virtual-size"] == 3 * CS
    assert got == want


def test_info_human_lines_show_the_backing_file(tmp_path: Path) -> None:
    (tmp_path / "base.raw").write_bytes(b"b" * CS)
    w = Qcow2Writer(CS, backing_file="base.raw", backing_format="raw")
    w.build().save(tmp_path / "top.qcow2")
    proc = cli("info", str(tmp_path / "top.qcow2"))
    assert proc.returncode == 0, proc.stderr
    assert "backing file: base.raw" in proc.stdout.splitlines()
    assert "backing file format: raw" in proc.stdout.splitlines()


@pytest.mark.parametrize("make", [bad_magic, bad_l1], ids=["bad-magic", "bad-l1"])
def test_info_corrupt_image_is_one_error_line(tmp_path: Path, make: Callable[[Path], None]) -> None:
    src = tmp_path / "bad.qcow2"
    make(src)
    assert_one_error_line(cli("info", str(src)))
    assert_one_error_line(cli("info", "--json", str(src)))


def test_info_without_a_known_magic_is_raw_as_for_qemu_img(tmp_path: Path) -> None:
    src = tmp_path / "plain.bin"
    src.write_bytes(b"NOTQCOW2" + bytes(4088))
    proc = cli("info", "--json", str(src))
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["format"] == "raw" and facts["virtual-size"] == 4096
    assert facts["allocation"]["data"] == 4096


def test_info_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.qcow2"
    line = assert_one_error_line(cli("info", str(missing)))
    assert str(missing) in line


# -- --debug, usage errors, help --------------------------------------------------------------


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    src = tmp_path / "bad.qcow2"
    corrupt_image(src)
    proc = cli("--debug", "convert", str(src), str(tmp_path / "out.raw"))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "Qcow2CorruptError" in proc.stderr
    bad_magic(src)
    proc = cli("--debug", "info", str(src))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["convert"],
        ["convert", "only-src.qcow2"],
        ["convert", "a.qcow2", "b.raw", "--workers", "abc"],
        ["convert", "a.qcow2", "b.raw", "--workers", "0"],
        ["convert", "a.qcow2", "b.raw", "--workers"],
        ["info"],
        ["info", "a.qcow2", "--bogus"],
        ["no-such-command"],
    ],
    ids=lambda a: " ".join(a) or "(none)",
)
def test_usage_errors_exit_2(tmp_path: Path, args: List[str]) -> None:
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert "usage: pyimagecache" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_help_lists_the_commands() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("convert", "info", "fetch", "ensure"):
        assert re.search(rf"^ +{command} ", proc.stdout, re.M), (command, proc.stdout)
    for command in ("convert", "info"):
        sub = cli(command, "--help")
        assert sub.returncode == 0
        assert f"usage: pyimagecache {command}" in sub.stdout
    assert "--workers" in cli("convert", "--help").stdout
    assert "--json" in cli("info", "--help").stdout


def test_version_is_the_installed_distribution_version() -> None:
    from importlib.metadata import version

    proc = cli("--version")
    assert proc.returncode == 0, proc
    assert proc.stdout == f"pyimagecache {version('pyimagecache')}\n"


@pytest.mark.parametrize("command", ["convert", "copy"])
def test_convert_and_copy_do_not_import_logging(tmp_path: Path, command: str) -> None:
    # Every CLI run pays for its imports; logging (and concurrent.futures, which imports it)
    # cost ~10 ms that these commands, which never log, must not pay.
    src = tmp_path / "in.img"
    if command == "convert":
        image(src, clusters=8)
    else:
        src.write_bytes(b"disk" * 4096)
    dst = tmp_path / "out.raw"
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pyimagecache", command, str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert traced.returncode == 0, traced.stderr
    assert dst.exists()
    imported = {
        line.split("|")[-1].strip()
        for line in traced.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & {"logging", "concurrent.futures"}, sorted(imported)
