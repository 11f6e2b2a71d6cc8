"""The retry policy as small pure functions: what is retryable, how long to wait, what Retry-After says."""

from __future__ import annotations

import datetime
import email.utils
import random
import time

# Statuses that a later identical request can plausibly succeed on (the same set the openai SDK retries).
RETRYABLE_STATUS = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def error_kind_for_status(status: int) -> str:
    """Map an HTTP error status to an `LLMError.kind`."""
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    return "http_4xx"


def backoff_delay(retry_index: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with full jitter: uniform in [0, min(cap, base * 2**retry_index)].

    Full jitter spreads a burst of clients that failed together (the AWS architecture blog's comparison
    found it the best of the jitter variants for total work and completion time).
    """
    ceiling = min(cap_s, base_s * (2.0**retry_index))
    return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(headers: dict[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait according to the response headers, or None when they say nothing usable.

    Reads `retry-after-ms` (sent by OpenAI) first, then `Retry-After` as delta-seconds or an HTTP date.
    Header names are matched case-insensitively; negative or unparsable values are ignored.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP dates are always UTC
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
