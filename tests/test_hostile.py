"""Issue 17's edges, tried as a hostile server and as a careless user would: only the pinned
bytes reach a disk, and nothing a user has is ever destroyed.

Hostile images are made by qemu-img (backing files in every spelling, external data files);
the bar is that no byte of a local file reaches any cache file and nothing is cached. Careless
cases (a typo in a digest, an output path that is the input, a page cached as a disk) must
leave what the user had byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from conftest import require_tool
from ensureenv import Env, MiB, disk_image, env, server, tamper, tar_of

import pyimagecache
from pyimagecache.errors import (
    ChangedEntryError,
    ChecksumMismatchError,
    DigestConflictError,
    DiskCopyError,
    DownloadError,
    ExternalReferenceError,
    NotADiskError,
    OutputError,
)

__all__ = ["env", "server"]  # fixtures, imported for pytest

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not really " * 64


def qemu_img(*args: str) -> None:
    subprocess.run([require_tool("qemu-img"), *args], check=True, capture_output=True)


def cache_bytes(cache: Path) -> Dict[str, bytes]:
    """Every regular file under the cache, by name."""
    if not cache.exists():
        return {}
    return {p.name: p.read_bytes() for p in cache.rglob("*") if p.is_file()}


def assert_nothing_leaked(cache: Path, secret: bytes = SECRET) -> None:
    for name, data in cache_bytes(cache).items():
        assert secret[:32] not in data, f"{name} holds bytes of the local file"


def assert_nothing_cached(env: Env) -> None:
    """No raw disk, no sidecar, no source: the download at fault was removed."""
    assert [n for n in env.files() if not n.startswith(".")] == [], env.files()


# -- 1. self-contained sources ---------------------------------------------------------------


def evil_qcow2(path: Path, *, backing: str = "", data_file: str = "") -> bytes:
    """A qcow2 made by qemu-img that names ``backing`` or an external ``data_file``."""
    if backing:
        qemu_img("create", "-q", "-u", "-f", "qcow2", "-b", backing, "-F", "raw", str(path), "1M")
    else:
        # qemu-img creates the data file; the header keeps the name we give it afterwards.
        made = path.with_name("made-data")
        qemu_img(
            "create", "-q", "-f", "qcow2", "-o", f"data_file={made},data_file_raw=on",
            str(path), "1M",
        )  # fmt: skip
        escaped = data_file.replace(",", ",,")  # qemu's option syntax doubles commas
        qemu_img("amend", "-q", "-f", "qcow2", "-o", f"data_file={escaped}", str(path))
        made.unlink()
    return path.read_bytes()


BACKING_SPELLINGS = {
    "absolute": "{secret}",
    "relative": "secret",
    "dot-relative": "./secret",
    "parent-relative": "../www/secret",
    "json": 'json:{{"driver": "raw", "file": {{"driver": "file", "filename": "{secret}"}}}}',
    "nbd": "nbd:127.0.0.1:10809",
    "http": "http://127.0.0.1:1/secret",
    "file-protocol": "file:{secret}",
}


@pytest.fixture
def secret(env: Env) -> Path:
    """A local file a hostile image wants, and its twin inside the cache directory."""
    path = env.tmp / "secret"
    path.write_bytes(SECRET)
    env.cache.mkdir(parents=True, exist_ok=True)
    (env.cache / "secret").write_bytes(SECRET)
    (env.www / "secret").write_bytes(SECRET)
    return path


@pytest.mark.qemu
@pytest.mark.parametrize("spelling", sorted(BACKING_SPELLINGS))
@pytest.mark.parametrize("wrap", ["bare", "xz", "tar"])
def test_a_downloaded_qcow2_naming_a_backing_file_is_refused(
    env: Env, secret: Path, spelling: str, wrap: str
) -> None:
    name = BACKING_SPELLINGS[spelling].format(secret=secret)
    data = evil_qcow2(env.tmp / "evil.qcow2", backing=name)
    served = {"bare": data, "xz": lzma.compress(data), "tar": tar_of("disk.qcow2", data)}[wrap]
    filename = {"bare": "evil.qcow2", "xz": "evil.qcow2.xz", "tar": "evil.tar"}[wrap]
    (env.www / filename).write_bytes(served)
    url = f"{env.server.base}/{filename}"
    with pytest.raises(ExternalReferenceError) as caught:
        env.ensure(url, sha256=hashlib.sha256(served).hexdigest())
    assert caught.value.reference == name
    assert "backing file" in str(caught.value) and "is at fault, removed it" in str(caught.value)
    (env.cache / "secret").unlink()  # the twin planted for the relative spellings
    assert_nothing_cached(env)
    assert_nothing_leaked(env.cache)


@pytest.mark.qemu
@pytest.mark.parametrize("spelling", ["absolute", "relative", "json"])
def test_a_downloaded_qcow2_with_an_external_data_file_is_refused(
    env: Env, secret: Path, spelling: str
) -> None:
    name = BACKING_SPELLINGS[spelling].format(secret=secret)
    data = evil_qcow2(env.tmp / "evil.qcow2", data_file=name)
    (env.www / "evil.qcow2").write_bytes(data)
    with pytest.raises(ExternalReferenceError, match="external data file") as caught:
        env.ensure(f"{env.server.base}/evil.qcow2")
    assert caught.value.reference == name
    (env.cache / "secret").unlink()
    assert_nothing_cached(env)
    assert_nothing_leaked(env.cache)


@pytest.mark.qemu
def test_a_relative_backing_name_cannot_pull_in_another_cached_disk(env: Env) -> None:
    victim = disk_image(seed=7)
    env.publish("victim", "victim.img", victim)
    cached = env.ensure("victim")
    evil = evil_qcow2(env.tmp / "evil.qcow2", backing=cached.name)
    env.publish("evil", "evil.qcow2", evil)  # pinned: the digest matches, still refused
    with pytest.raises(ExternalReferenceError):
        env.ensure("evil")
    assert [p.name for p in env.cache.glob("*.raw")] == [cached.name]
    assert cached.read_bytes() == victim


@pytest.mark.qemu
def test_the_cli_refuses_it_in_one_line_and_exit_1(env: Env, secret: Path) -> None:
    data = evil_qcow2(env.tmp / "evil.qcow2", backing=str(secret))
    (env.www / "evil.qcow2").write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "ensure", f"{env.server.base}/evil.qcow2",
         "--cache-dir", str(env.cache)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1 and run.stdout == ""
    lines = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and str(secret) in lines[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.qemu
def test_local_convert_follows_a_plain_backing_chain_as_qemu_img_does(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(disk_image(2 * MiB, seed=3))
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(top))
    ours, theirs = tmp_path / "ours.raw", tmp_path / "theirs.raw"
    pyimagecache.convert(top, ours)
    qemu_img("convert", "-O", "raw", str(top), str(theirs))
    assert ours.read_bytes() == theirs.read_bytes() == base.read_bytes()


@pytest.mark.qemu
@pytest.mark.parametrize("spelling", ["json", "nbd", "http", "file-protocol"])
def test_local_images_never_open_a_json_or_protocol_name(tmp_path: Path, spelling: str) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    name = BACKING_SPELLINGS[spelling].format(secret=secret)
    top = tmp_path / "top.qcow2"
    evil_qcow2(top, backing=name)
    with pytest.raises(ExternalReferenceError, match="specification, not a file name"):
        pyimagecache.convert(top, tmp_path / "out.raw")
    assert not (tmp_path / "out.raw").exists()
    with pytest.raises(ExternalReferenceError), pyimagecache.open_image(top) as img:
        img.read_into(0, 4096, bytearray(4096))
    facts = pyimagecache.info(top)  # info only reports the name, as qemu-img info does
    assert facts["backing-filename"] == name


@pytest.mark.qemu
def test_a_downloaded_vmdk_descriptor_is_refused_bare_and_packed(env: Env, secret: Path) -> None:
    descriptor = (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        'createType="monolithicFlat"\n\n# Extent description\n'
        f'RW 2048 FLAT "{secret}" 0\n'
    ).encode()
    for filename, body in (("d.vmdk", descriptor), ("d.vmdk.xz", lzma.compress(descriptor))):
        (env.www / filename).write_bytes(body)
        with pytest.raises(pyimagecache.ImageFormatError, match="descriptor"):
            env.ensure(f"{env.server.base}/{filename}")
    (env.cache / "secret").unlink()
    assert_nothing_cached(env)
    assert_nothing_leaked(env.cache)


# -- 2. never destroy what the user has --------------------------------------------------------


def snapshot(paths: List[Path]) -> List[Tuple[str, bytes, int, int]]:
    return [(p.name, p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in paths]


def test_a_typo_in_a_digest_leaves_the_verified_entry_untouched(env: Env) -> None:
    data = disk_image(seed=11)
    (env.www / "u.img").write_bytes(data)
    url = f"{env.server.base}/u.img"
    right = hashlib.sha256(data).hexdigest()
    raw = env.ensure(url, sha256=right)
    before = snapshot([raw, raw.with_name(raw.name + ".json")])
    typo = right[:10] + ("0" if right[10] != "0" else "1") + right[11:]
    gets = len(env.server.gets("u.img"))
    with pytest.raises(DigestConflictError) as caught:
        env.ensure(url, sha256=typo)
    message = str(caught.value)
    assert right in message and typo in message and str(raw) in message
    assert snapshot([raw, raw.with_name(raw.name + ".json")]) == before
    assert len(env.server.gets("u.img")) == gets  # not even a request
    assert env.ensure(url, sha256=right) == raw  # and it is still a hit


def test_a_digest_given_for_an_unverified_entry_fetches_to_a_temporary_name(env: Env) -> None:
    old = disk_image(seed=12)
    (env.www / "v.img").write_bytes(old)
    url = f"{env.server.base}/v.img"
    raw = env.ensure(url)  # unpinned: cached unverified
    before = snapshot([raw])
    # A digest nothing upstream matches: fetched again, refused, the old entry kept as it was.
    with pytest.raises(ChecksumMismatchError):
        env.ensure(url, sha256="ab" * 32)
    assert snapshot([raw]) == before and env.leftovers() == []
    # Upstream changed, and the digest given is the new file's: the entry is replaced.
    new = disk_image(seed=13)
    (env.www / "v.img").write_bytes(new)
    assert env.ensure(url, sha256=hashlib.sha256(new).hexdigest()).read_bytes() == new


SPELLINGS = ["same", "dot", "absolute", "symlink", "hardlink"]


def spelled(src: Path, how: str) -> str:
    if how == "same":
        return str(src)
    if how == "dot":
        return os.path.join(os.path.relpath(src.parent), ".", src.name)
    if how == "absolute":
        return str(src.resolve())
    link = src.with_name(f"{how}-{src.name}")
    (os.symlink if how == "symlink" else os.link)(src, link)
    return str(link)


@pytest.mark.qemu
@pytest.mark.parametrize("how", SPELLINGS)
def test_convert_onto_its_own_source_is_refused(tmp_path: Path, how: str) -> None:
    src = tmp_path / "x.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(src), "1M")
    before = src.read_bytes()
    with pytest.raises(OutputError, match="same file as the source"):
        pyimagecache.convert(src, spelled(src, how))
    assert src.read_bytes() == before
    run = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "convert", str(src), spelled(src, "absolute")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1 and "same file as the source" in run.stderr
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in tmp_path.iterdir() if not p.name.startswith(".")
    )


@pytest.mark.parametrize("how", SPELLINGS)
def test_copy_onto_its_own_source_is_refused(tmp_path: Path, how: str) -> None:
    src = tmp_path / "x.raw"
    src.write_bytes(disk_image(MiB))
    before = src.read_bytes()
    with pytest.raises(DiskCopyError, match="same file"):
        pyimagecache.copy_disk(src, spelled(src, how), 2 * MiB)
    assert src.read_bytes() == before


@pytest.mark.qemu
def test_copy_of_a_non_raw_source_points_to_convert(tmp_path: Path) -> None:
    src = tmp_path / "x.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(src), "1M")
    run = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "copy", str(src), str(tmp_path / "vm.qcow2"),
         "--size", "1G"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "is a qcow2 image, not a raw disk" in run.stderr and "pyimagecache convert" in run.stderr
    assert not (tmp_path / "vm.qcow2").exists()


@pytest.mark.parametrize("command", ["convert", "copy"])
@pytest.mark.parametrize("case", ["directory", "missing-parent", "file-as-parent"])
def test_a_bad_output_path_is_named_as_given(tmp_path: Path, command: str, case: str) -> None:
    src = tmp_path / "x.raw"
    src.write_bytes(disk_image(MiB))
    (tmp_path / "dir").mkdir()
    dst = {"directory": "dir", "missing-parent": "nope/out.raw", "file-as-parent": "x.raw/o"}[case]
    run = subprocess.run(
        [sys.executable, "-m", "pyimagecache", command, "x.raw", dst],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert dst in run.stderr and ".tmp-" not in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "x.raw"]
    assert list((tmp_path / "dir").iterdir()) == []


# -- 3. not a disk, not cached ------------------------------------------------------------------

PAGES = {
    "listing.img": b"<html><head><title>Index of /images</title></head><body><pre>\n"
    + b'<a href="noble.img">noble.img</a>  2026-07-25 12:00  600M\n' * 30
    + b"</pre></body></html>\n",
    "portal.img": b"<!DOCTYPE html>\n<html><body><form>Sign in to the hotel Wi-Fi</form>"
    + b"</body></html>\n" * 40,
    "x.qcow2": b"this is not a disk\n",  # 19 bytes
    "error.img": b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}\n',
    "error.xml": b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>\n',
    "odd.img": b"\xeb\x63\x90" + bytes(997),  # binary, but 1000 bytes: no disk is that size
}


@pytest.mark.parametrize("name", sorted(PAGES))
@pytest.mark.parametrize("pinned", [False, True])
def test_a_page_or_text_is_never_cached_as_a_disk(env: Env, name: str, pinned: bool) -> None:
    body = PAGES[name]
    (env.www / name).write_bytes(body)
    digest = hashlib.sha256(body).hexdigest() if pinned else None
    with pytest.raises(NotADiskError) as caught:
        env.ensure(f"{env.server.base}/{name}", sha256=digest)
    assert name in str(caught.value)
    assert_nothing_cached(env)


@pytest.mark.qemu
def test_bytes_unlike_the_name_are_refused(env: Env, tmp_path: Path) -> None:
    vhd = tmp_path / "d.vhd"
    qemu_img("create", "-q", "-f", "vpc", str(vhd), "1M")
    (env.www / "d.qcow2").write_bytes(vhd.read_bytes())
    with pytest.raises(NotADiskError, match="named like a qcow2 image but its bytes are a vhd"):
        env.ensure(f"{env.server.base}/d.qcow2")
    raw_named_vmdk = disk_image(MiB)
    (env.www / "d.vmdk").write_bytes(raw_named_vmdk)
    with pytest.raises(NotADiskError, match="named like a vmdk image but its bytes are raw"):
        env.ensure(f"{env.server.base}/d.vmdk")
    (env.www / "page.img.xz").write_bytes(lzma.compress(PAGES["portal.img"]))
    with pytest.raises(NotADiskError, match="HTML document"):
        env.ensure(f"{env.server.base}/page.img.xz")
    assert_nothing_cached(env)


@pytest.mark.qemu
@pytest.mark.parametrize("command", ["info", "convert"])
def test_convert_and_info_warn_once_and_behave_as_qemu_img(tmp_path: Path, command: str) -> None:
    page = tmp_path / "x.qcow2"
    page.write_bytes(PAGES["x.qcow2"])
    args = [str(page)] + ([str(tmp_path / "o.raw")] if command == "convert" else [])
    run = subprocess.run(
        [sys.executable, "-m", "pyimagecache", command, *args], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "warning" in line]
    assert warnings == [f"pyimagecache: warning: {page} is text, not a disk image"]
    if command == "convert":
        theirs = tmp_path / "q.raw"
        qemu_img("convert", "-f", "raw", "-O", "raw", str(page), str(theirs))
        assert (tmp_path / "o.raw").read_bytes() == theirs.read_bytes()  # padded to 512


# -- 4. a tamper-evident cache --------------------------------------------------------------------


def test_cached_raws_are_published_read_only_with_size_and_mtime_recorded(env: Env) -> None:
    data = disk_image(seed=21)
    (env.www / "t.img").write_bytes(data)
    raw = env.ensure(f"{env.server.base}/t.img", sha256=hashlib.sha256(data).hexdigest())
    st = raw.stat()
    assert stat.S_IMODE(st.st_mode) == 0o444
    record = json.loads(raw.with_name(raw.name + ".json").read_text())
    assert record["size"] == st.st_size and record["mtime_ns"] == st.st_mtime_ns


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_a_vmm_running_as_a_normal_user_cannot_open_it_read_write() -> None:
    top = Path(tempfile.mkdtemp(prefix="pyimagecache-ro-"))
    try:
        top.chmod(0o755)
        data = disk_image(MiB, seed=22)
        src = top / "d.img"
        src.write_bytes(data)
        raw = pyimagecache.ensure(src.as_uri(), top / "cache")
        (top / "cache").chmod(0o755)
        # The cache is the VMM user's own: the raw belongs to them, only its mode protects it.
        os.chown(raw, 65534, 65534)
        control = raw.with_name("control.raw")
        shutil.copyfile(raw, control)
        os.chown(control, 65534, 65534)
        os.chmod(control, 0o644)  # what a plain copy would be: writable by its owner

        def open_read_write(path: Path) -> subprocess.CompletedProcess[str]:
            # The shell opens it read-write (<>), as a VMM would, as that user.
            return subprocess.run(
                ["/bin/sh", "-c", ': <>"$1"', "sh", str(path)],
                user=65534,
                group=65534,
                capture_output=True,
                text=True,
                check=False,
            )

        assert open_read_write(control).returncode == 0  # the probe can open a writable file
        run = open_read_write(raw)
        assert run.returncode != 0 and "Permission denied" in run.stderr, run.stderr
        assert raw.read_bytes() == data
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("keep_source", [False, True])
def test_a_changed_raw_is_rebuilt_with_one_warning(
    env: Env, keep_source: bool, caplog: pytest.LogCaptureFixture
) -> None:
    data = disk_image(seed=23)
    (env.www / "w.img.xz").write_bytes(lzma.compress(data))
    url = f"{env.server.base}/w.img.xz"
    raw = env.ensure(url, keep_source=keep_source)
    tamper(raw)
    gets = len(env.server.gets("w.img.xz"))
    with caplog.at_level(logging.WARNING, "pyimagecache"):
        again = env.ensure(url, keep_source=keep_source)
    assert again == raw and raw.read_bytes() == data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(raw) in warnings[0] and "changed" in warnings[0]
    assert len(env.server.gets("w.img.xz")) == gets + (0 if keep_source else 1)
    assert env.ensure(url) == raw  # and a hit again, quietly


def test_offline_a_changed_raw_is_one_error_saying_how_to_repair(env: Env) -> None:
    data = disk_image(seed=24)
    (env.www / "o.img").write_bytes(data)
    url = f"{env.server.base}/o.img"
    raw = env.ensure(url)
    with open(raw, "r+b") as f:
        f.truncate(raw.stat().st_size + 512)
    before = snapshot([raw])
    with pytest.raises(ChangedEntryError) as caught:
        env.ensure(url, offline=True)
    message = str(caught.value)
    assert str(raw) in message and "size" in message and "cache verify --repair" in message
    assert "offline=True" in message
    assert snapshot([raw]) == before  # untouched: the user decides


# -- 5. offline means offline -------------------------------------------------------------------


class Listener:
    """A socket on 127.0.0.1 that counts who connects to it."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lsn = Listener()
    yield lsn
    lsn.close()


@pytest.mark.parametrize(
    "reference", ["oci://127.0.0.1:{port}/disks/fedora:43", "docker://127.0.0.1:{port}/d:latest"]
)
def test_offline_an_oci_tag_is_refused_without_a_connection(
    tmp_path: Path, listener: Listener, reference: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = reference.format(port=listener.port)
    with pytest.raises(DownloadError, match=r"offline mode \(offline=True\) forbids resolving"):
        pyimagecache.ensure(ref, tmp_path / "cache", offline=True)
    monkeypatch.setenv("PYIMAGECACHE_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"PYIMAGECACHE_OFFLINE=1"):
        pyimagecache.ensure(ref, tmp_path / "cache")
    assert listener.accepted == 0


def test_offline_an_uncached_oci_digest_is_refused_without_a_connection(
    tmp_path: Path, listener: Listener
) -> None:
    ref = f"oci://127.0.0.1:{listener.port}/disks/fedora@sha256:{'ab' * 32}"
    with pytest.raises(DownloadError, match="offline mode .* forbids pulling it"):
        pyimagecache.ensure(ref, tmp_path / "cache", offline=True)
    assert listener.accepted == 0


def test_offline_flag_is_named_in_the_cli_error(tmp_path: Path, listener: Listener) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pyimagecache", "ensure", f"http://127.0.0.1:{listener.port}/x.img",
         "--offline", "--cache-dir", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYIMAGECACHE_OFFLINE": ""},
    )  # fmt: skip
    assert run.returncode == 1 and "offline mode (--offline)" in run.stderr, run.stderr
    assert listener.accepted == 0


FUZZ_CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"
HOSTILE = sorted(FUZZ_CORPUS.glob("hostile-*.qcow2")) + sorted(
    FUZZ_CORPUS.glob("vmdk/hostile-*.vmdk")
)


def test_the_fuzz_corpora_hold_the_hostile_references() -> None:
    assert len(HOSTILE) >= 7, HOSTILE


@pytest.mark.parametrize("seed", HOSTILE, ids=lambda p: p.name)
def test_hostile_corpus_inputs_are_refused_everywhere(seed: Path, tmp_path: Path) -> None:
    """The fuzz corpora replay these through every harness; here each must be refused by
    name, locally and as a download, with nothing written."""
    with pytest.raises(ExternalReferenceError) as caught:
        pyimagecache.open_image(seed)
    assert caught.value.reference and caught.value.reference in str(caught.value)
    with pytest.raises(ExternalReferenceError):
        pyimagecache.convert(seed, tmp_path / "out.raw")
    copy = tmp_path / "www" / seed.name
    copy.parent.mkdir()
    shutil.copyfile(seed, copy)
    with pytest.raises(ExternalReferenceError):
        pyimagecache.ensure(copy.as_uri(), tmp_path / "cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "www"]
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.qemu
def test_a_converted_disk_that_itself_looks_like_an_image_is_refused(env: Env) -> None:
    """A qcow2 whose guest disk begins with a qcow2 header naming a local file: the raw would
    be opened as that inner qcow2 by anything that probes formats (qemu's old raw hole)."""
    inner = env.tmp / "inner.qcow2"
    qemu_img(
        "create", "-q", "-u", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", str(inner), "1M"
    )
    guest = env.tmp / "guest.raw"
    guest.write_bytes(inner.read_bytes().ljust(2 * MiB, b"\0"))
    outer = env.tmp / "outer.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(guest), str(outer))
    (env.www / "outer.qcow2").write_bytes(outer.read_bytes())
    with pytest.raises(NotADiskError, match="laid out as a qcow2 image") as caught:
        env.ensure(f"{env.server.base}/outer.qcow2")
    assert caught.value.looks_like == "a qcow2 image"
    assert_nothing_cached(env)
