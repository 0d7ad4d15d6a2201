"""When to try a failed HTTP attempt again, and how long to wait first.

Exponential backoff with full jitter spreads the retries of many clients hitting one struggling
mirror; a server's Retry-After is honoured (capped, so a hostile value cannot park us for a day).
"""

from __future__ import annotations

import email.utils
import random
import time
from datetime import timezone
from typing import Optional

#: Statuses worth another try: timeouts, rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))

#: First backoff delay in seconds; doubled per consecutive failure up to MAX_DELAY.
BASE_DELAY = 1.0
MAX_DELAY = 30.0
#: The longest Retry-After we obey; past it we wait this long and try anyway.
MAX_RETRY_AFTER = 120.0


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


def backoff_delay(failures: int, retry_after: Optional[float] = None) -> float:
    """Seconds to sleep before the next attempt after ``failures`` (>= 1) consecutive failures."""
    ceiling = min(MAX_DELAY, BASE_DELAY * (2 ** max(failures - 1, 0)))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay

