"""The package's logger, for modules on a path that must stay fast when it has nothing to say.

``logging`` is imported only once there is something to log: a cache hit, and the commands
that never log (convert, copy), do not pay for the import. With no logging configured,
Python's last-resort handler prints warnings (not info) on stderr.
"""

from __future__ import annotations

NAME = "pyimagecache"


def info(message: str, *args: object) -> None:
    import logging

    logging.getLogger(NAME).info(message, *args)


def warning(message: str, *args: object) -> None:
    import logging

    logging.getLogger(NAME).warning(message, *args)
