"""An asynchronous client for OpenAI-compatible servers (OpenAI, vLLM, SGLang, llama.cpp server, Ollama).

Built on httpx rather than the openai SDK so that every HTTP request is ours to count: the SDK retries on
its own, which would hide how many requests a call really cost. One `OpenAIClient` is meant to be shared
by all the coroutines of a run: it bounds the calls in progress (`concurrency`), spaces request starts
(`rpm`), retries what can succeed later and sums token usage.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from codeflow.llm.ratelimit import RateLimiter
from codeflow.llm.retry import backoff_delay, error_kind_for_status, is_retryable_status, parse_retry_after
from codeflow.llm.types import TOKEN_PARAMS, LLMError, LLMResponse, cut_at_stop, trim_stop_prefix

_BODY_SNIPPET_CHARS = 300
# While a server that answered before is unreachable (restarting), wait at most this long between tries.
CONNECT_POLL_CAP_S = 5.0


@dataclass(eq=False)  # exceptions compare and hash by identity
class _AttemptFailure(Exception):
    """One HTTP request that did not yield an answer; the retry loop decides whether to try again."""

    kind: str
    message: str
    status_code: int | None = None
    retryable: bool = True
    retry_after_s: float | None = None


@dataclass
class _Answer:
    text: str
    finish_reason: str | None
    usage: dict[str, int]
    model: str


@dataclass
class _LoopState:
    """What is bound to one event loop; rebuilt when the client is reused under a new `asyncio.run`."""

    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient
    slots: asyncio.Semaphore


class OpenAIClient:
    """Chat and text completions against an OpenAI-compatible `base_url` (for example http://localhost:8000/v1).

    The API key is read from the environment variable `api_key_env` when the client is built; when that
    variable is unset or empty no Authorization header is sent, which is what local servers expect.

    Retries (up to `max_retries` after the first request) cover 408, 409, 429, 5xx, connection errors,
    timeouts and answers that are not the expected JSON; the wait is exponential back-off with full jitter
    (`backoff_base_s * 2**retry`, capped at `backoff_cap_s`) unless the server sends Retry-After (seconds,
    an HTTP date, or OpenAI's retry-after-ms), which is honoured up to `max_retry_after_s`. A 429's
    Retry-After also holds back the client's other request starts. Other 4xx are raised at once.

    Once the server has answered at least once, connection errors (refused, reset, closed mid-answer) are
    a server that went away, most often to restart: they are retried for up to `retry_connect_s` seconds
    from the first such error of a call, polling at most `CONNECT_POLL_CAP_S` apart, without using up
    `max_retries`. Before any answer they count as ordinary retries, so a wrong `base_url` fails fast.

    `timeout_s` bounds each HTTP request as a whole (connect to last byte). `token_param` names the length
    limit of chat requests: "max_tokens" (default, what open servers read) or "max_completion_tokens"
    (what OpenAI's newer models require); `/completions` only knows `max_tokens`, which it always gets.
    `extra_body` is merged into every request body (for example {"top_p": 0.95} or vLLM's
    {"repetition_penalty": 1.1}). Answers are cut at the first stop string here, whether or not the server
    left it in the text, and an answer the server ended at a stop loses a trailing start of a stop string.
    """

    backend = "openai"
    sends_requests = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        rpm: float | None = None,
        *,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        retry_connect_s: float = 600.0,
        token_param: str = "max_tokens",
        extra_body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
        seed: int | None = None,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if retry_connect_s < 0:
            raise ValueError(f"retry_connect_s must be 0 or more, got {retry_connect_s}")
        if token_param not in TOKEN_PARAMS:
            raise ValueError(f"token_param must be one of {TOKEN_PARAMS}, got {token_param!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.rpm = rpm
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_retry_after_s = max_retry_after_s
        self.retry_connect_s = retry_connect_s
        self.token_param = token_param
        self.extra_body = dict(extra_body or {})
        self._api_key = os.environ.get(api_key_env) or None
        self._headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if self._api_key:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        # Jitter only; seeding it makes back-off waits reproducible in tests, never the answers.
        self._rng = random.Random(seed)
        self._limiter = RateLimiter(rpm)
        self._state: _LoopState | None = None
        self._reached = False  # the server has sent at least one HTTP response
        # Counters, summed over the client's life.
        self.requests_sent = 0
        self.retries = 0
        self.calls_ok = 0
        self.calls_failed = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def __repr__(self) -> str:  # never shows the key
        return (
            f"OpenAIClient(base_url={self.base_url!r}, model={self.model!r}, concurrency={self.concurrency})"
        )

    @property
    def sends_api_key(self) -> bool:
        return self._api_key is not None

    def usage_totals(self) -> dict[str, int]:
        """Token usage and request counts so far, as a plain dict for logs and run summaries."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "requests_sent": self.requests_sent,
            "retries": self.retries,
            "calls_ok": self.calls_ok,
            "calls_failed": self.calls_failed,
        }

    # -- public calls ---------------------------------------------------------------------------------

    async def chat(
        self,
        messages: list[dict],
        *,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> LLMResponse:
        """POST /chat/completions with `messages` ([{"role": ..., "content": ...}, ...])."""
        body = self._body({"messages": messages}, self.token_param, max_tokens, temperature, seed, stop)
        return await self._call("/chat/completions", body, stop)

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> LLMResponse:
        """POST /completions with a raw `prompt` (for base models and completion-style benchmarks)."""
        body = self._body({"prompt": prompt}, "max_tokens", max_tokens, temperature, seed, stop)
        return await self._call("/completions", body, stop)

    async def chat_many(
        self, conversations: list[list[dict]], **options: Any
    ) -> list[LLMResponse | LLMError]:
        """`chat` on every conversation concurrently; a failed call yields its LLMError in place of an answer."""
        return await asyncio.gather(*(_capture(self.chat(c, **options)) for c in conversations))

    async def complete_many(self, prompts: list[str], **options: Any) -> list[LLMResponse | LLMError]:
        """`complete` on every prompt concurrently; a failed call yields its LLMError in place of an answer."""
        return await asyncio.gather(*(_capture(self.complete(p, **options)) for p in prompts))

    async def aclose(self) -> None:
        state, self._state = self._state, None
        # Connections opened under an event loop that has since ended went with it; only ours can be closed.
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.http.aclose()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- inside -----------------------------------------------------------------------------------------

    def _body(
        self,
        payload: dict,
        token_param: str,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        stop: list[str] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **payload, token_param: max_tokens}
        body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = list(stop)
        body.update(self.extra_body)
        return body

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            # httpx connections and asyncio primitives belong to one loop; a new asyncio.run needs new ones.
            http = httpx.AsyncClient(
                base_url=self.base_url + "/",
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
            )
            self._state = _LoopState(loop=loop, http=http, slots=asyncio.Semaphore(self.concurrency))
        return self._state

    async def _call(self, path: str, body: dict[str, Any], stop: list[str] | None) -> LLMResponse:
        state = self._loop_state()
        started = time.perf_counter()
        # The slot is held across retries: a call that is backing off keeps its place instead of letting
        # new calls pile onto a server that is already refusing work.
        async with state.slots:
            attempts = retries = reconnects = 0
            unreachable_since: float | None = None
            while True:
                attempts += 1
                await self._limiter.acquire()
                self.requests_sent += 1
                try:
                    answer = await self._send_once(state.http, path, body)
                except _AttemptFailure as failure:
                    waiting_for_restart = failure.kind == "connection" and self._reached
                    if waiting_for_restart:
                        now = time.monotonic()
                        unreachable_since = unreachable_since if unreachable_since is not None else now
                        give_up = now - unreachable_since >= self.retry_connect_s
                    else:
                        unreachable_since = None
                        retries += 1
                        give_up = not failure.retryable or retries > self.max_retries
                    if give_up:
                        self.calls_failed += 1
                        raise LLMError(
                            failure.kind,
                            f"POST {self.base_url}{path} failed after {attempts} request(s): {failure.message}",
                            attempts=attempts,
                            status_code=failure.status_code,
                        ) from None
                    self.retries += 1
                    if waiting_for_restart:
                        reconnects += 1
                        wait = backoff_delay(
                            reconnects - 1, self.backoff_base_s, CONNECT_POLL_CAP_S, self._rng
                        )
                    else:
                        wait = self._retry_wait(retries - 1, failure)
                    await asyncio.sleep(wait)
                    continue
                break
        self.calls_ok += 1
        self.prompt_tokens += answer.usage["prompt_tokens"]
        self.completion_tokens += answer.usage["completion_tokens"]
        text, stopped = cut_at_stop(answer.text, stop)
        if not stopped and answer.finish_reason == "stop":
            text = trim_stop_prefix(text, stop)
        return LLMResponse(
            text=text,
            finish_reason="stop" if stopped else answer.finish_reason,
            usage=answer.usage,
            model=answer.model or self.model,
            latency_s=time.perf_counter() - started,
            attempts=attempts,
        )

    def _retry_wait(self, retry_index: int, failure: _AttemptFailure) -> float:
        if failure.retry_after_s is None:
            return backoff_delay(retry_index, self.backoff_base_s, self.backoff_cap_s, self._rng)
        wait = min(failure.retry_after_s, self.max_retry_after_s)
        if failure.kind == "http_429":
            self._limiter.pause_until(self._limiter.clock() + wait)
        return wait

    async def _send_once(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> _Answer:
        try:
            # httpx's timeout is per read; wait_for makes it a bound on the whole request.
            response = await asyncio.wait_for(http.post(path.lstrip("/"), json=body), self.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _AttemptFailure("timeout", f"no complete response within {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _AttemptFailure("connection", f"{type(exc).__name__}: {exc}") from None
        self._reached = True
        if response.status_code >= 400:
            raise self._http_failure(response)
        return _parse_answer(path, response)

    def _http_failure(self, response: httpx.Response) -> _AttemptFailure:
        status = response.status_code
        message = f"HTTP {status}: {response.text[:_BODY_SNIPPET_CHARS]}"
        if status == 401 and not self._api_key:
            message += f" (no API key was sent: ${self.api_key_env} is unset or empty)"
        return _AttemptFailure(
            error_kind_for_status(status),
            message,
            status_code=status,
            retryable=is_retryable_status(status),
            retry_after_s=parse_retry_after(dict(response.headers)),
        )


async def _capture(call: Any) -> LLMResponse | LLMError:
    try:
        return await call
    except LLMError as error:
        return error


def _parse_answer(path: str, response: httpx.Response) -> _Answer:
    """Pull text, finish_reason and usage out of a 200 response; anything unexpected is `malformed`."""
    snippet = response.text[:_BODY_SNIPPET_CHARS]
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _AttemptFailure("malformed", f"response is not JSON: {snippet!r}", status_code=200) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _AttemptFailure("malformed", f"response has no choices: {snippet!r}", status_code=200)
    choice = choices[0]
    if path == "/chat/completions":
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        present = isinstance(message, dict) and "content" in message
    else:
        text = choice.get("text")
        present = "text" in choice
    if not present or not isinstance(text, (str, type(None))):
        raise _AttemptFailure("malformed", f"response choice has no text: {snippet!r}", status_code=200)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return _Answer(
        # A null content (a refusal or content filter) is an empty answer; finish_reason says why.
        text=text or "",
        finish_reason=choice.get("finish_reason"),
        usage={key: _as_count(usage.get(key)) for key in ("prompt_tokens", "completion_tokens")},
        model=data.get("model") if isinstance(data.get("model"), str) else "",
    )


def _as_count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
