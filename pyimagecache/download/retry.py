"""When to try a failed HTTP attempt again, and what the server asked us to wait.

How long to wait (exponential backoff with full jitter, a capped Retry-After) is the
:class:`~pyimagecache.settings.Retry` setting's business.
"""

from __future__ import annotations

import email.utils
import time
from datetime import timezone
from typing import Optional

#: Statuses worth another try: timeouts, rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))


def is_retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent
    or unparseable.

    >>> parse_retry_after("3")
    3.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)
