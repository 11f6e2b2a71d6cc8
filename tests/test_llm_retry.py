"""The retry policy's pure parts: retryable statuses, back-off bounds, Retry-After parsing, rate spacing."""

from __future__ import annotations

import email.utils
import random

import pytest

from codeflow.llm import ERROR_KINDS, LLMError, backoff_delay, is_retryable_status, parse_retry_after
from codeflow.llm.ratelimit import RateLimiter
from codeflow.llm.retry import error_kind_for_status


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (503, True),
        (599, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
def test_retryable_statuses(status, retryable):
    assert is_retryable_status(status) is retryable


def test_error_kind_for_status():
    assert error_kind_for_status(429) == "http_429"
    assert error_kind_for_status(503) == "http_5xx"
    assert error_kind_for_status(408) == "http_4xx"
    assert error_kind_for_status(400) == "http_4xx"


def test_backoff_is_full_jitter_under_an_exponential_cap():
    rng = random.Random(0)
    for retry in range(8):
        ceiling = min(2.0, 0.25 * 2**retry)
        delays = [backoff_delay(retry, 0.25, 2.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter spreads over the whole range, not just near the ceiling
        assert min(delays) < 0.2 * ceiling and max(delays) > 0.8 * ceiling


def test_retry_after_seconds_ms_and_http_date():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    # OpenAI's millisecond header wins over the coarse one
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "1"}) == 0.25
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(7.0)
    # a date in the past means "now", not a negative wait
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0


@pytest.mark.parametrize(
    "headers",
    [None, {}, {"Retry-After": "soon"}, {"Retry-After": "-4"}, {"retry-after-ms": "x"}, {"X-Other": "5"}],
)
def test_retry_after_unusable_values_are_ignored(headers):
    assert parse_retry_after(headers) is None


def test_rate_limiter_spaces_starts_evenly():
    clock = [100.0]
    limiter = RateLimiter(rpm=120, clock=lambda: clock[0])  # one start every 0.5 s
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]
    clock[0] = 110.0  # after a quiet spell there is no debt to pay back
    assert limiter.reserve() == 0.0


def test_rate_limiter_pause_holds_back_later_starts():
    clock = [0.0]
    limiter = RateLimiter(rpm=None, clock=lambda: clock[0])
    assert limiter.reserve() == 0.0
    limiter.pause_until(2.0)
    assert limiter.reserve() == 2.0


def test_rate_limiter_rejects_non_positive_rpm():
    with pytest.raises(ValueError, match="rpm"):
        RateLimiter(rpm=0)


def test_llm_error_carries_kind_attempts_status():
    error = LLMError("http_429", "slow down", attempts=7, status_code=429)
    assert (error.kind, error.attempts, error.status_code, str(error)) == ("http_429", 7, 429, "slow down")
    assert set(ERROR_KINDS) == {"timeout", "http_429", "http_4xx", "http_5xx", "connection", "malformed"}
    with pytest.raises(ValueError, match="kind"):
        LLMError("oops", "x")


def test_llm_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(LLMError("timeout", "no answer in 2 s", attempts=3)))
    assert (error.kind, error.attempts, error.status_code, str(error)) == (
        "timeout",
        3,
        None,
        "no answer in 2 s",
    )
