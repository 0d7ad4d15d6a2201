"""Every public function and class of ``pyimagecache.__all__``, given a bad argument or a missing
file, raises an ``ImageCacheError``, and where Python's habit is a ValueError or an OSError
(FileNotFoundError...) it is that too, so both ``except`` clauses work."""

from __future__ import annotations

import inspect
import json
import pickle
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

import pyimagecache as p
from pyimagecache import errors

UNREACHABLE = "http://127.0.0.1:9/x.raw"  # never contacted: every case fails before


def bad_catalog(tmp: Path) -> Path:
    path = tmp / "catalog.json"
    entry = {"distro": "d", "version": "1", "codename": "", "snapshot": "1", "bumped_at": ""}
    entry["arch"] = {"amd64": {"url": "https://e.org/x.raw", "sha256": "not-hex"}}
    path.write_text(json.dumps({"x": entry}))
    return path


def a_file(tmp: Path) -> Path:
    path = tmp / "disk.raw"
    path.write_bytes(b"\xeb\x63\x90" + bytes(8189))
    return path


# (public name, what is wrong, the call, the error class, what it must also be)
Case = Tuple[str, str, Callable[[Path], Any], type, Tuple[type, ...]]
CASES: List[Case] = [
    ("aliases", "missing catalog", lambda t: p.aliases(t / "none.json"), p.CatalogError, ()),
    ("aliases", "malformed catalog", lambda t: p.aliases(bad_catalog(t)), p.CatalogError, ()),
    # ArchImage and ImageInfo are plain records: their values are checked where a catalog is read.
    ("ArchImage", "a pin that is not hex", lambda t: p.aliases(bad_catalog(t)), p.CatalogError, ()),
    ("ImageInfo", "not an ImageInfo", lambda t: p.aliases({"x": 1}), p.CatalogError, ()),
    (
        "convert",
        "missing source",
        lambda t: p.convert(t / "none.img", t / "o.raw"),
        errors.ImageFileNotFoundError,
        (FileNotFoundError,),
    ),
    (
        "convert",
        "a directory as source",
        lambda t: p.convert(t, t / "o.raw"),
        errors.ImageFileError,
        (OSError,),  # errno EISDIR
    ),
    (
        "convert",
        "zero workers",
        lambda t: p.convert(a_file(t), t / "o.raw", workers=0),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "copy_disk",
        "missing source",
        lambda t: p.copy_disk(t / "none", t / "o"),
        p.DiskCopyError,
        (),
    ),
    (
        "copy_disk",
        "negative size",
        lambda t: p.copy_disk(a_file(t), t / "o", -1),
        p.DiskCopyError,
        (),
    ),
    (
        "ensure",
        "negative timeout",
        lambda t: p.ensure(UNREACHABLE, t, timeout=-1),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "ensure",
        "negative retries",
        lambda t: p.ensure(UNREACHABLE, t, retries=-1),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "ensure",
        "a mirror of an unknown scheme",
        lambda t: p.ensure(UNREACHABLE, t, mirrors=["ftp://m.example/"]),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "ensure",
        "a malformed digest",
        lambda t: p.ensure(UNREACHABLE, t, sha256="abc"),
        p.DigestError,
        (ValueError,),
    ),
    ("ensure", "an unknown alias", lambda t: p.ensure("no-such-alias", t), p.UnknownImageError, ()),
    (
        "ensure",
        "an unknown arch",
        lambda t: p.ensure("debian-12", t, arch="sparc"),
        p.UnsupportedArchError,
        (),
    ),
    (
        "ensure",
        "a missing file:// source",
        lambda t: p.ensure((t / "none.raw").as_uri(), t / "c"),
        p.DownloadError,
        (),
    ),
    ("fetch", "missing source", lambda t: p.fetch(t / "none", t / "o"), p.DownloadError, ()),
    (
        "fetch",
        "a timeout of one number too many",
        lambda t: p.fetch(a_file(t), t / "o", timeout=(1, 2, 3)),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "fetch",
        "a digest of the other algorithm",
        lambda t: p.fetch(a_file(t), t / "o", sha256="sha512:" + "0" * 128),
        p.DigestError,
        (ValueError,),
    ),
    (
        "info",
        "missing image",
        lambda t: p.info(t / "none.img"),
        errors.ImageFileNotFoundError,
        (FileNotFoundError,),
    ),
    (
        "info",
        "a tar holding no disk",
        lambda t: p.info(tar_without_disk(t)),
        p.ContainerError,
        (),
    ),
    (
        "open_image",
        "missing image",
        lambda t: p.open_image(t / "none.img"),
        errors.ImageFileNotFoundError,
        (FileNotFoundError,),
    ),
    (
        "Settings",
        "zero timeout",
        lambda t: p.Settings(timeout=0),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "Retry",
        "negative total",
        lambda t: p.Retry(total=-1),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
    (
        "Timeout",
        "negative seconds",
        lambda t: p.Timeout(-5),
        errors.InvalidArgumentError,
        (ValueError,),
    ),
]


def tar_without_disk(tmp: Path) -> Path:
    import io
    import tarfile

    path = tmp / "notes.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return path


PUBLIC = sorted(
    name
    for name in p.__all__
    if not (inspect.isclass(getattr(p, name)) and issubclass(getattr(p, name), BaseException))
)


def test_every_public_function_and_class_is_covered() -> None:
    assert {case[0] for case in CASES} == set(PUBLIC)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}: {c[1]}")
def test_bad_argument_raises_an_image_cache_error(case: Case, tmp_path: Path) -> None:
    _, _, call, cls, also = case
    with pytest.raises(p.ImageCacheError) as info:
        call(tmp_path)
    assert isinstance(info.value, cls), type(info.value)
    for extra in also:
        assert isinstance(info.value, extra), (type(info.value), extra)
    # ... and survives a process boundary, as every error does.
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is type(info.value) and str(back) == str(info.value)
    if isinstance(info.value, OSError):
        assert (back.errno, back.filename) == (info.value.errno, info.value.filename)


def test_a_missing_image_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        p.info(tmp_path / "none.img")
    assert info.value.filename == str(tmp_path / "none.img")
    assert str(info.value) == f"{tmp_path / 'none.img'}: No such file or directory"


def test_ensure_refuses_an_unknown_arch_for_a_url_too(tmp_path: Path) -> None:
    from pyimagecache.errors import UnsupportedArchError

    src = tmp_path / "d.img"
    src.write_bytes(bytes(4096))
    with pytest.raises(UnsupportedArchError, match="unknown arch 'sparc'"):
        p.ensure(src.as_uri(), tmp_path / "c", arch="sparc")
    assert p.ensure(src.as_uri(), tmp_path / "c", arch="x86_64").exists()


def test_an_empty_cache_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(p.InvalidArgumentError, match="cache_dir is empty"):
        p.ensure("debian-12", "")
