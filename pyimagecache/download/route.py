"""The one place that decides how a URL is read: a local file (a path or ``file://``) is
copied, anything else goes over HTTP(S), with resume, retries and redirects."""

from __future__ import annotations

import os
from typing import Callable, Mapping, NamedTuple, Optional, Union

from .._progress import ProgressCallback
from ..settings import Settings
from .local import copy_into, local_path
from .partial import Validators
from .sinks import Sink


class Outcome(NamedTuple):
    url: str  # the final URL, after redirects (file:// for a local file)
    status: int
    headers: Mapping[str, str]
    validators: Validators


def fill(
    url: Union[str, os.PathLike[str]],
    sink: Sink,
    validators: Optional[Validators],
    settings: Settings,
    *,
    progress: Optional[ProgressCallback] = None,
    on_validators: Optional[Callable[[Validators], None]] = None,
    resume_hint: str = "",
    path: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Outcome:
    """Fill ``sink`` with the body of ``url``. A local file is copied from its start (there is
    nothing to resume from); an http(s) URL continues from ``sink.done`` bytes when
    ``validators`` say they belong to the same resource (see :func:`transfer.download`)."""
    source = local_path(url)
    if source is not None:
        size = copy_into(source, sink, progress)
        identity = Validators(os.fspath(url), None, None, size)
        return Outcome(source.resolve().as_uri(), 200, {}, identity)
    from .transfer import download  # urllib3 only for http(s)

    return download(
        os.fspath(url),
        sink,
        validators,
        settings,
        progress=progress,
        on_validators=on_validators,
        resume_hint=resume_hint,
        path=path,
        headers=headers,
    )
