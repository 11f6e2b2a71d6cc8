"""Wall time during which something is in flight, for runs where many calls overlap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class BusyClock:
    """Sums the wall time during which at least one call is in flight. Used from one event loop thread, so
    the counter needs no lock; overlapping calls count once, which keeps the total at most the wall time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._in_flight = 0
        self._since = 0.0

    @contextmanager
    def busy(self) -> Iterator[None]:
        if self._in_flight == 0:
            self._since = time.perf_counter()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.seconds += time.perf_counter() - self._since
