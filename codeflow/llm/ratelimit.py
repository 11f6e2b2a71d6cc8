"""A client-side request-rate limiter: request starts are spaced evenly, at most `rpm` per minute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """Spaces request starts `60 / rpm` seconds apart, first come first served.

    `reserve` claims the next free start time without awaiting, which on one event loop makes it atomic, so
    no lock is needed (and nothing is bound to a particular loop). `pause_until` lets one 429's Retry-After
    hold back every later request start of the client, not only the retry of the request that was refused.
    """

    def __init__(self, rpm: float | None, clock: Callable[[], float] = time.monotonic):
        if rpm is not None and rpm <= 0:
            raise ValueError(f"rpm must be positive or None (no limit), got {rpm}")
        self.interval_s = 60.0 / rpm if rpm else 0.0
        self.clock = clock
        self._next_start = 0.0
        self._paused_until = 0.0

    def pause_until(self, when: float) -> None:
        self._paused_until = max(self._paused_until, when)

    def reserve(self) -> float:
        """Claim the next start slot and return how many seconds to sleep before using it."""
        now = self.clock()
        start = max(now, self._next_start, self._paused_until)
        self._next_start = start + self.interval_s
        return start - now

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        # A pause that began while this caller slept (another request got a 429) holds it back too.
        while (remaining := self._paused_until - self.clock()) > 0:
            await asyncio.sleep(remaining)
