"""Where ``convert`` and ``copy`` may write, decided before anything is opened for writing.

Never onto their own source, whatever the spelling (``./x``, an absolute path, a symbolic
link, a hard link: the same inode is the same file); never onto a directory; never into a
directory that does not exist. Each refusal names the path the user gave, not the hidden
temporary sibling the output would have been written to first.
"""

from __future__ import annotations

import os
import stat
from typing import Type, Union

from .errors import ImageCacheError

PathLike = Union[str, "os.PathLike[str]"]


def check_output(src: PathLike, dst: PathLike, error: Type[ImageCacheError]) -> None:
    """Raise ``error`` when writing ``dst`` from ``src`` cannot be right.

    >>> import pathlib, tempfile
    >>> from pyimagecache.errors import OutputError
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "x.qcow2").write_bytes(b"QFI\\xfb")
    >>> check_output(tmp / "x.qcow2", tmp / "." / "x.qcow2", OutputError)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pyimagecache.errors.OutputError: .../x.qcow2 is the same file as the source .../x.qcow2; ...
    """
    where = os.fspath(dst)
    try:
        target = os.stat(dst)  # follows a symbolic link to what it names
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(where))
        if not os.path.isdir(parent):
            raise error(f"cannot write {where}: its directory {parent} does not exist") from None
        return
    except NotADirectoryError:
        raise error(
            f"cannot write {where}: a part of that path is a file, not a directory"
        ) from None
    if stat.S_ISDIR(target.st_mode):
        raise error(f"cannot write {where}: it is a directory (give a file name inside it)")
    try:
        source = os.stat(src)
    except OSError:
        return  # reading the source fails on its own, with its own message
    if (source.st_dev, source.st_ino) == (target.st_dev, target.st_ino):
        raise error(
            f"{where} is the same file as the source {os.fspath(src)}; refusing to write "
            "over it (write the output to another file)"
        )
