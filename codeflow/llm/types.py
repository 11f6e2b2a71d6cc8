"""The plain data every LLM backend returns or raises: one answer, or one failure after retries."""

from __future__ import annotations

from dataclasses import dataclass, field

# The failure kinds a caller can branch on; `LLMError.kind` is always one of these.
ERROR_KINDS = ("timeout", "http_429", "http_4xx", "http_5xx", "connection", "malformed")


@dataclass
class LLMResponse:
    """One generated answer.

    `finish_reason` is passed through from the backend ("stop", "length", ...): a truncated answer
    ("length") is returned, not raised, so that the caller decides what it is worth. `usage` always has
    `prompt_tokens` and `completion_tokens` (0 when a server does not report them). `latency_s` is the
    wall time of the whole call, retries and back-off included; `attempts` counts the HTTP requests it took.
    """

    text: str
    finish_reason: str | None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    model: str = ""
    latency_s: float = 0.0
    attempts: int = 1


class LLMError(Exception):
    """A request that failed for good: retries exhausted, or a 4xx that retrying cannot fix.

    `kind` is one of ERROR_KINDS, `attempts` the number of HTTP requests sent for this call and
    `status_code` the last HTTP status seen (None for timeouts, connection errors and similar).
    """

    def __init__(self, kind: str, message: str, *, attempts: int = 1, status_code: int | None = None):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown LLMError kind {kind!r}; expected one of {ERROR_KINDS}")
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts
        self.status_code = status_code

    def __reduce__(self) -> tuple:
        # Keeps kind/attempts/status_code through pickling (multiprocessing, concurrent.futures).
        return (_rebuild_error, (self.kind, str(self), self.attempts, self.status_code))

    def __repr__(self) -> str:
        return f"LLMError(kind={self.kind!r}, attempts={self.attempts}, status_code={self.status_code}, {str(self)!r})"


def _rebuild_error(kind: str, message: str, attempts: int, status_code: int | None) -> LLMError:
    return LLMError(kind, message, attempts=attempts, status_code=status_code)
