"""A scripted fake OpenAI-compatible server on 127.0.0.1, for tests that need a real HTTP endpoint.

    from tests.fake_openai_server import FakeOpenAIServer, answer, rate_limited, server_error, hang

    with FakeOpenAIServer([rate_limited(0.3), server_error(503), answer("def f(): ...")]) as server:
        client = OpenAIClient(server.base_url, "fake-model", timeout_s=0.5)
        ...
        assert len(server.requests) == 3

A script says what the server does for each request it receives:
- a list of behaviours, used in order, then `default` (a normal answer "ok" unless given) for the rest;
- a callable `(RecordedRequest) -> Behaviour | None`, asked for every request (None: use `default`);
- `ScriptByContent({"problem-a": [hang(), answer("...")], ...})`, a ready-made callable: requests whose
  prompt contains a key follow that key's list in order, so scripts stay deterministic when requests of
  different problems arrive concurrently in any order.

Behaviours: `answer` (normal), `truncated` (finish_reason "length"), `rate_limited` (429 + Retry-After),
`server_error` (500/503), `http_error` (any status), `hang` (holds the request past the client's timeout),
`malformed` (200 with a body that is not the expected JSON), `drop` (closes the connection unanswered).
Every request is logged in `server.requests` (path, parsed body, headers, arrival time), and
`server.max_in_flight` is the largest number of requests the server was handling at once.

Run standalone for a manual check: `python -m tests.fake_openai_server --port 8011 --reply "hello"`.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TextSource = str | Callable[["RecordedRequest"], str]


@dataclass
class Behaviour:
    """What the server does with one request. Build these with the helper functions below."""

    action: str  # "answer" | "status" | "hang" | "malformed" | "drop"
    text: TextSource = "ok"
    finish_reason: str | None = "stop"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def answer(
    text: TextSource = "ok",
    *,
    finish_reason: str | None = "stop",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    delay_s: float = 0.0,
) -> Behaviour:
    """A normal 200 answer. `text` may be a callable of the request. Usage defaults to whitespace word counts
    of the prompt and of the answer; `delay_s` holds the answer back (to observe concurrency)."""
    return Behaviour(
        "answer",
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        delay_s=delay_s,
    )


def truncated(text: TextSource = "def f(x):\n    return", **usage: int) -> Behaviour:
    """A 200 answer cut by the token limit: finish_reason "length"."""
    return answer(text, finish_reason="length", **usage)


def rate_limited(retry_after: float | str | None = 1, *, header: str = "Retry-After") -> Behaviour:
    """HTTP 429. `retry_after` goes in the `header` (seconds, or an HTTP date string); None sends no header.
    Use header="retry-after-ms" with a value in milliseconds to mimic OpenAI."""
    headers = {} if retry_after is None else {header: _header_value(retry_after)}
    return http_error(429, "Rate limit reached, please retry later", headers=headers)


def server_error(status: int = 500, message: str = "internal server error") -> Behaviour:
    return http_error(status, message)


def http_error(status: int, message: str = "error", *, headers: dict[str, str] | None = None) -> Behaviour:
    """Any HTTP error status with an OpenAI-style error body."""
    body = json.dumps({"error": {"message": message, "type": "fake_error", "code": status}})
    return Behaviour("status", status=status, headers=dict(headers or {}), body=body)


def hang(seconds: float = 30.0) -> Behaviour:
    """Hold the request open for `seconds` (meant to exceed the client's timeout), then close it unanswered.
    Stopping the server releases hung requests at once."""
    return Behaviour("hang", delay_s=seconds)


def malformed(body: str = '{"choices": [{"mess') -> Behaviour:
    """A 200 response whose body is not the expected JSON (truncated JSON by default)."""
    return Behaviour("malformed", body=body)


def drop() -> Behaviour:
    """Close the connection without sending any response (the client sees a connection error)."""
    return Behaviour("drop")


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    index: int
    path: str
    body: Any  # the parsed JSON body, or the raw text when it was not JSON
    headers: dict[str, str]
    received_at: float  # time.monotonic() on arrival

    @property
    def prompt_text(self) -> str:
        """The text prompt, or all message contents of a chat request joined by newlines."""
        if not isinstance(self.body, dict):
            return ""
        if "messages" in self.body:
            return "\n".join(str(m.get("content", "")) for m in self.body["messages"] if isinstance(m, dict))
        return str(self.body.get("prompt", ""))


Script = Sequence[Behaviour] | Callable[[RecordedRequest], Behaviour]


class ScriptByContent:
    """Route requests by prompt content: the first key found in the prompt picks that key's behaviour list,
    consumed in order (its last entry repeats once the list is used up). Prompts matching no key get `default`,
    or, when that is None, the server's own default."""

    def __init__(self, scripts: dict[str, Sequence[Behaviour]], default: Behaviour | None = None):
        if any(not behaviours for behaviours in scripts.values()):
            raise ValueError("every key of ScriptByContent needs at least one behaviour")
        self._scripts = {key: list(behaviours) for key, behaviours in scripts.items()}
        self._used = {key: 0 for key in scripts}
        self._default = default
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Behaviour | None:
        prompt = request.prompt_text
        with self._lock:
            for key, behaviours in self._scripts.items():
                if key in prompt:
                    position = min(self._used[key], len(behaviours) - 1)
                    self._used[key] += 1
                    return behaviours[position]
        return self._default

    def requests_for(self, key: str) -> int:
        """How many requests were routed to `key` so far."""
        return self._used[key]


class FakeOpenAIServer:
    """A threaded HTTP server answering POST {base}/chat/completions and {base}/completions from a script."""

    def __init__(self, script: Script = (), *, default: Behaviour | None = None, model: str = "fake-model"):
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._script = script if callable(script) else list(script)
        self._default = default or answer()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()  # open client connections, reset by stop()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAIServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._stopping.clear()
        # A short poll interval keeps stop() fast: shutdown() waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and reset every open connection, as a server that dies or restarts does; `start`
        again (on the same port) to come back."""
        self._stopping.set()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake server is not running; call start() or use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- what tests read ---------------------------------------------------------------------------------

    def request_count(self, path: str | None = None) -> int:
        """Requests received, all or only those to `path` (e.g. "/v1/chat/completions")."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def arrival_gaps(self) -> list[float]:
        """Seconds between consecutive request arrivals, in arrival order."""
        with self._lock:
            times = [r.received_at for r in self.requests]
        return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]

    # -- used by the handler -------------------------------------------------------------------------------

    def _admit(self, path: str, body: Any, headers: dict[str, str]) -> tuple[RecordedRequest, Behaviour]:
        with self._lock:
            request = RecordedRequest(len(self.requests), path, body, headers, time.monotonic())
            self.requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if callable(self._script):
                behaviour = None
            elif request.index < len(self._script):
                behaviour = self._script[request.index]
            else:
                behaviour = self._default
        if behaviour is None:  # call a script function outside the lock: it may be slow or take its own lock
            behaviour = self._script(request) or self._default
        return request, behaviour

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do; every response sets Content-Length
    server_state: FakeOpenAIServer

    def setup(self) -> None:
        super().setup()
        with self.server_state._lock:
            self.server_state._connections.add(self.connection)

    def finish(self) -> None:
        with self.server_state._lock:
            self.server_state._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:  # the connection was reset by stop()
            pass

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(raw)
        except json.JSONDecodeError:
            body = raw
        state = self.server_state
        request, behaviour = state._admit(self.path, body, {k.lower(): v for k, v in self.headers.items()})
        try:
            self._perform(state, request, behaviour)
        finally:
            state._release()

    def _perform(self, state: FakeOpenAIServer, request: RecordedRequest, behaviour: Behaviour) -> None:
        if not request.path.endswith(("/chat/completions", "/completions")):
            self._send(404, json.dumps({"error": {"message": f"no route {request.path}"}}))
            return
        if behaviour.action == "hang":
            state._stopping.wait(behaviour.delay_s)
            self.close_connection = True
            return
        if behaviour.action == "drop":
            self.close_connection = True
            return
        if behaviour.action == "status":
            self._send(behaviour.status, behaviour.body, behaviour.headers)
            return
        if behaviour.action == "malformed":
            self._send(200, behaviour.body)
            return
        if behaviour.delay_s:
            state._stopping.wait(behaviour.delay_s)
        text = behaviour.text(request) if callable(behaviour.text) else behaviour.text
        payload = _completion_payload(
            chat=request.path.endswith("/chat/completions"),
            model=state.model,
            text=text,
            finish_reason=behaviour.finish_reason,
            prompt_tokens=_or(behaviour.prompt_tokens, len(request.prompt_text.split())),
            completion_tokens=_or(behaviour.completion_tokens, len(text.split())),
            request_index=request.index,
        )
        self._send(200, json.dumps(payload))

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _completion_payload(
    *,
    chat: bool,
    model: str,
    text: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    request_index: int,
) -> dict[str, Any]:
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
        }
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": f"fake-{request_index}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _header_value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _or(value: int | None, fallback: int) -> int:
    return fallback if value is None else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible endpoint on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--reply", default="ok", help="the text of every answer")
    parser.add_argument("--serve-for", type=float, default=None, metavar="S", help="stop after S seconds")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(default=answer(args.reply)).start(args.port)
    print(f"fake OpenAI-compatible server at {server.base_url} (Ctrl-C stops it)", flush=True)
    deadline = time.monotonic() + (args.serve_for if args.serve_for is not None else float("inf"))
    try:
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
