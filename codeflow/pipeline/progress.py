"""Progress bars on stderr, one per stage, and the switch that also silences third-party bars."""

from __future__ import annotations

import sys
from collections import Counter

# How attempts can end, in the order the progress line shows them.
ATTEMPT_ENDINGS = ("passed", "failed", "truncated", "no_code", "no_tests", "tests_edited", "llm_error")


class Progress:
    """A tqdm bar per stage on stderr, with live counts; silent when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def bar(self, desc: str, total: int):
        if not self.enabled:
            return _NullBar()
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="problem", file=sys.stderr, dynamic_ncols=True, leave=True)


def ordered_counts(counts: Counter) -> dict[str, int]:
    """Counts in a fixed order, so the progress line does not reshuffle as they appear."""
    return {k: counts[k] for k in ATTEMPT_ENDINGS if counts.get(k)}


class _NullBar:
    n = 0

    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *a, **k) -> None: ...
    def close(self) -> None: ...
