"""Every knob in one place: network settings as one frozen, validated object (the environment
variables the package reads are :mod:`pyimagecache.environment`'s, re-exported here).

Modelled on urllib3's ``Timeout`` and ``Retry``: small immutable values, validated when made,
passed down to every download path instead of module globals or parameters threaded one by
one. :func:`Settings.from_environment` is what ``ensure`` and the CLI build; ``fetch`` builds
one from its keyword arguments.

>>> Settings(timeout=Timeout(5, 30), retry=Retry(total=2)).retry.total
2
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Tuple, Union

from .environment import ENVIRONMENT, environ
from .errors import InvalidArgumentError

__all__ = ["DEFAULT", "ENVIRONMENT", "Retry", "Settings", "Timeout", "TimeoutArg", "environ"]

#: ``timeout=`` as the public functions take it: seconds for both, or (connect, read).
TimeoutArg = Union[float, Tuple[float, float], "Timeout"]


def _flag(name: str, env: Optional[Mapping[str, str]]) -> bool:
    value = environ(name, env).lower()
    if value in ("", "0", "no", "false", "off"):
        return False
    if value in ("1", "yes", "true", "on"):
        return True
    raise InvalidArgumentError(f"{name}={value!r}: expected 1 or 0")


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class _TimeoutFields(NamedTuple):
    connect: float
    read: float


class Timeout(_TimeoutFields):
    """Seconds to connect, and the longest wait for the next chunk of a body (not the whole
    transfer); by default 30 and 60.

    >>> Timeout(10, 20)
    Timeout(connect=10.0, read=20.0)
    """

    def __new__(cls, connect: float = 30.0, read: float = 60.0) -> Timeout:
        return super().__new__(
            cls, _seconds("connect timeout", connect), _seconds("read timeout", read)
        )

    @classmethod
    def coerce(cls, value: TimeoutArg) -> Timeout:
        """``fetch``'s ``timeout=``: a number, a (connect, read) pair or a Timeout."""
        if isinstance(value, Timeout):
            return value
        if isinstance(value, tuple):
            if len(value) != 2:
                raise InvalidArgumentError(
                    f"timeout must be seconds or (connect, read), got {value!r}"
                )
            return cls(value[0], value[1])
        return cls(value, value)


class _RetryFields(NamedTuple):
    total: int
    backoff_base: float
    backoff_max: float
    max_retry_after: float


class Retry(_RetryFields):
    """How often and how patiently a failed attempt is tried again.

    ``total`` failed attempts are retried within one call (an attempt that moved the download
    forward by a megabyte does not count). Delays are exponential with full jitter, from
    ``backoff_base`` seconds doubling up to ``backoff_max``; a server's Retry-After is obeyed
    up to ``max_retry_after``.

    >>> Retry(total=0).total
    0
    """

    def __new__(
        cls,
        total: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
    ) -> Retry:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise InvalidArgumentError(f"retries must be a whole number >= 0, got {total!r}")
        base = _seconds("backoff_base", backoff_base)
        top = _seconds("backoff_max", backoff_max)
        if top < base:
            raise InvalidArgumentError(f"backoff_max {top} is smaller than backoff_base {base}")
        return super().__new__(cls, total, base, top, _seconds("max_retry_after", max_retry_after))

    def delay(self, failures: int, retry_after: Optional[float] = None) -> float:
        """Seconds to sleep before the next attempt after ``failures`` (>= 1) failures."""
        import random

        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(failures - 1, 0)))
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


class _SettingsFields(NamedTuple):
    timeout: Timeout
    retry: Retry
    ca_bundle: Optional[str]
    mirrors: Tuple[str, ...]
    offline: bool
    strict: bool
    keyring: Optional[Path]
    insecure_registries: Tuple[str, ...]
    verify_signatures: bool
    require_signatures: bool
    #: What set ``offline`` (an environment variable, a flag, a keyword), for its messages.
    offline_from: str


class Settings(_SettingsFields):
    """What every download path needs to know, in one frozen value.

    ``timeout`` and ``retry`` as above; ``ca_bundle``: CA certificates to trust instead of the
    system's; ``mirrors``: bases tried in order before upstream (``http(s)://``, ``file://`` or
    ``oci://REGISTRY/REPO``); ``offline``: never contact upstream; ``strict``: a pin that aged
    out is an error instead of a fallback; ``keyring``: checksum files' signatures are checked
    against it instead of the keys shipped with pyimagecache; ``insecure_registries``:
    ``host:port`` registries that may be reached over plain http; ``verify_signatures``: False
    uses a fallback's checksum file without checking its signature; ``require_signatures``:
    refuse a fallback from a family that publishes no signature.

    >>> Settings().timeout
    Timeout(connect=30.0, read=60.0)
    """

    def __new__(
        cls,
        timeout: TimeoutArg = (30.0, 60.0),
        retry: Union[Retry, int] = 5,
        ca_bundle: Optional[str] = None,
        mirrors: Any = (),
        offline: bool = False,
        strict: bool = False,
        keyring: Optional[Union[str, os.PathLike[str]]] = None,
        insecure_registries: Any = (),
        verify_signatures: bool = True,
        require_signatures: bool = False,
        offline_from: str = "",
    ) -> Settings:
        if isinstance(mirrors, str):
            mirrors = mirrors.split()
        from .mirrors import check_mirror  # validates the spelling of each base

        try:
            checked = tuple(check_mirror(m) for m in mirrors)
        except InvalidArgumentError:
            raise
        except ValueError as exc:  # mirrors.py's own ValueError: one class for every bad value
            raise InvalidArgumentError(str(exc)) from None
        if isinstance(insecure_registries, str):
            insecure_registries = insecure_registries.split()
        return super().__new__(
            cls,
            Timeout.coerce(timeout),
            retry if isinstance(retry, Retry) else Retry(total=retry),
            None if ca_bundle is None else os.fspath(ca_bundle),
            checked,
            bool(offline),
            bool(strict),
            None if keyring is None else Path(keyring),
            tuple(str(r).strip().lower() for r in insecure_registries),
            bool(verify_signatures),
            bool(require_signatures),
            (offline_from or "offline=True") if offline else "",
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        fields = self._asdict()
        fields.update(changes)
        return Settings(**fields)

    def overridden(
        self,
        timeout: Optional[TimeoutArg] = None,
        retries: Optional[Union[int, Retry]] = None,
        ca_bundle: Optional[str] = None,
        **fields: Any,
    ) -> Settings:
        """These settings with what a caller of ``fetch`` or ``ensure`` gave (the arguments
        that are not None) on top; ``retries`` keeps the backoff and changes only the count.

        >>> Settings().overridden(retries=2, offline=True).retry.total
        2
        """
        changes: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if timeout is not None:
            changes["timeout"] = timeout
        if retries is not None:
            changes["retry"] = (
                retries if isinstance(retries, Retry) else Retry(retries, *self.retry[1:])
            )
        if ca_bundle is not None:
            changes["ca_bundle"] = ca_bundle
        return self.replace(**changes) if changes else self

    @classmethod
    def from_environment(
        cls, env: Optional[Mapping[str, str]] = None, **overrides: Any
    ) -> Settings:
        """Settings from ``PYIMAGECACHE_*`` variables, then ``overrides`` (those not None).

        >>> Settings.from_environment({"PYIMAGECACHE_OFFLINE": "1"}).offline
        True
        """
        fields: dict[str, Any] = {
            "mirrors": environ("PYIMAGECACHE_MIRRORS", env).split(),
            "offline": _flag("PYIMAGECACHE_OFFLINE", env),
            "offline_from": "PYIMAGECACHE_OFFLINE=" + environ("PYIMAGECACHE_OFFLINE", env),
            "strict": _flag("PYIMAGECACHE_STRICT", env),
            "keyring": environ("PYIMAGECACHE_KEYRING", env) or None,
            "insecure_registries": environ("PYIMAGECACHE_INSECURE_REGISTRIES", env).split(),
            "verify_signatures": not _flag("PYIMAGECACHE_NO_VERIFY_SIGNATURES", env),
            "require_signatures": _flag("PYIMAGECACHE_REQUIRE_SIGNATURES", env),
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)


#: What ``fetch`` and friends use when given nothing else.
DEFAULT = Settings()
