"""The one protocol every chat model follows, and the plain data it returns or raises: one answer, or one
failure after retries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# Names of the length limit in a chat request body (OpenAI's newer models want the second).
TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
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


@runtime_checkable
class ChatModel(Protocol):
    """What both CLIs ask of a model, whatever serves it (`codeflow.llm.registry` opens one by name).

    `chat` answers a conversation, `complete` continues raw text (base models, completion benchmarks). Both
    return an `LLMResponse` or raise `LLMError`; the answer is cut at the first of the `stop` strings.
    Calls may run concurrently: the model bounds its own requests in flight (an HTTP client) or batches the
    calls that arrive together (a local model). `backend` is the registry name, `model` what answers.
    `sends_requests` says whether `LLMResponse.attempts` counts HTTP requests (False for a local model).
    """

    backend: str
    model: str
    sends_requests: bool

    async def chat(
        self,
        messages: list[dict],
        *,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> LLMResponse: ...

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> LLMResponse: ...

    async def aclose(self) -> None: ...


def cut_at_stop(text: str, stop: list[str] | tuple[str, ...] | None) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found (servers differ on returning it)."""
    cut = min((i for i in (text.find(s) for s in stop or () if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def trim_stop_prefix(text: str, stop: list[str] | tuple[str, ...] | None) -> str:
    """`text` without a trailing piece that begins a stop string, for an answer the server ended at a stop.

    Some servers (`transformers serve`) end on the token that completes a stop string and return the text
    before that token only, so the stop string's first characters are left at the end ("\ndef" for "\ndef ").
    A leftover of whitespace alone is kept: it may as well be the answer's own, and it changes no code.
    """
    longest = 0
    for s in stop or ():
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n if s[:n].strip() else longest
                break
    return text[: len(text) - longest]


def error_examples(errors: Iterable[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """(kind, how many, the first message) per error kind, most common first: one example is enough to act on."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for kind, message in errors:
        counts[kind] += 1
        first.setdefault(kind, message)
    return [(kind, n, first[kind]) for kind, n in counts.most_common()]
