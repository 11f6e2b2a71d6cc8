"""OpenAIClient against the scripted fake server: answers, every retry path, limits and counters."""

from __future__ import annotations

import asyncio

import pytest

from codeflow.llm import LLMError, OpenAIClient
from tests.fake_openai_server import (
    FakeOpenAIServer,
    answer,
    drop,
    hang,
    http_error,
    malformed,
    rate_limited,
    server_error,
    truncated,
)

CHAT = [{"role": "user", "content": "write add(a, b)"}]
CHAT_PATH = "/v1/chat/completions"


def make_client(server: FakeOpenAIServer, **options) -> OpenAIClient:
    """A client with test-sized waits: tiny back-off, short timeout, seeded jitter."""
    settings = dict(timeout_s=0.5, max_retries=3, backoff_base_s=0.001, backoff_cap_s=0.005, seed=0)
    settings.update(options)
    return OpenAIClient(server.base_url, "fake-model", api_key_env="CODEFLOW_TEST_KEY", **settings)


def chat_once(server: FakeOpenAIServer, **options):
    async def go():
        async with make_client(server, **options) as client:
            return await client.chat(CHAT, max_tokens=64)

    return asyncio.run(go())


def expect_error(server: FakeOpenAIServer, **options) -> LLMError:
    with pytest.raises(LLMError) as caught:
        chat_once(server, **options)
    return caught.value


# -- normal answers --------------------------------------------------------------------------------------


def test_chat_returns_text_usage_and_sends_the_request_body(monkeypatch):
    monkeypatch.delenv("CODEFLOW_TEST_KEY", raising=False)
    with FakeOpenAIServer(
        [answer("def add(a, b): return a + b", prompt_tokens=7, completion_tokens=9)]
    ) as server:
        response = chat_once(server, extra_body={"top_p": 0.9})
    assert response.text == "def add(a, b): return a + b"
    assert response.finish_reason == "stop"
    assert response.usage == {"prompt_tokens": 7, "completion_tokens": 9}
    assert response.model == "fake-model"
    assert response.attempts == 1
    [request] = server.requests
    assert request.path == CHAT_PATH
    assert request.body == {
        "model": "fake-model",
        "messages": CHAT,
        "max_tokens": 64,
        "temperature": 0.0,
        "top_p": 0.9,
    }
    # a local server needs no key: with the variable unset, no Authorization header goes out
    assert "authorization" not in request.headers


def test_api_key_from_the_environment_is_sent_as_bearer(monkeypatch):
    monkeypatch.setenv("CODEFLOW_TEST_KEY", "sk-test-123")
    with FakeOpenAIServer() as server:
        chat_once(server)
    assert server.requests[0].headers["authorization"] == "Bearer sk-test-123"


def test_complete_posts_the_prompt_to_completions_with_seed_and_stop():
    async def go(server):
        async with make_client(server) as client:
            return await client.complete("def add(a, b):", max_tokens=32, seed=7, stop=["\ndef"])

    with FakeOpenAIServer([answer("\n    return a + b\n")]) as server:
        response = asyncio.run(go(server))
    assert response.text == "\n    return a + b\n"
    [request] = server.requests
    assert request.path == "/v1/completions"
    assert request.body["prompt"] == "def add(a, b):"
    assert request.body["seed"] == 7 and request.body["stop"] == ["\ndef"]


def test_max_completion_tokens_option_renames_the_length_limit():
    with FakeOpenAIServer() as server:
        chat_once(server, token_param="max_completion_tokens")
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body


def test_finish_reason_length_is_returned_not_raised():
    with FakeOpenAIServer([truncated("def f(x):\n    return")]) as server:
        response = chat_once(server)
    assert response.finish_reason == "length"
    assert response.text == "def f(x):\n    return"
    assert len(server.requests) == 1


# -- retries -----------------------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured():
    with FakeOpenAIServer([rate_limited(0.3), answer("ok")]) as server:
        response = chat_once(server)
    assert response.attempts == 2 and len(server.requests) == 2
    # back-off alone would wait at most 5 ms here, so a gap this long can only come from the header
    assert server.arrival_gaps()[0] >= 0.28


def test_retry_after_ms_header_is_honoured():
    with FakeOpenAIServer([rate_limited(300, header="retry-after-ms"), answer("ok")]) as server:
        chat_once(server)
    assert server.arrival_gaps()[0] >= 0.28


def test_retry_after_is_capped_by_max_retry_after():
    with FakeOpenAIServer([rate_limited(3600), answer("ok")]) as server:
        response = chat_once(server, max_retry_after_s=0.01)
    assert response.attempts == 2


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses_are_retried_until_an_answer(status):
    script = [http_error(status), http_error(status), answer("ok")]
    with FakeOpenAIServer(script) as server:
        response = chat_once(server)
    assert response.text == "ok" and response.attempts == 3
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("behaviour", "kind", "status"),
    [
        (server_error(500), "http_5xx", 500),
        (server_error(503), "http_5xx", 503),
        (rate_limited(None), "http_429", 429),
        (malformed(), "malformed", 200),
        (drop(), "connection", None),
    ],
)
def test_persistent_failure_raises_after_max_retries(behaviour, kind, status):
    with FakeOpenAIServer(default=behaviour) as server:
        error = expect_error(server, max_retries=2)
    assert error.kind == kind
    assert error.status_code == status
    assert error.attempts == 3
    assert len(server.requests) == 3  # the first request and max_retries retries, not one more


def test_hang_past_the_timeout_is_retried_then_answered():
    with FakeOpenAIServer([hang(5.0), answer("late but fine")]) as server:
        response = chat_once(server, timeout_s=0.3)
    assert response.text == "late but fine"
    assert response.attempts == 2 and len(server.requests) == 2


def test_persistent_hang_raises_timeout():
    with FakeOpenAIServer(default=hang(5.0)) as server:
        error = expect_error(server, timeout_s=0.2, max_retries=1)
    assert error.kind == "timeout" and error.status_code is None
    assert error.attempts == 2 and len(server.requests) == 2


def test_malformed_json_is_retried_then_answered():
    script = [malformed("not json at all"), malformed('{"choices": []}'), answer("ok")]
    with FakeOpenAIServer(script) as server:
        response = chat_once(server)
    assert response.attempts == 3 and len(server.requests) == 3


def test_non_retryable_400_is_raised_at_once():
    with FakeOpenAIServer([http_error(400, "bad messages"), answer("never sent")]) as server:
        error = expect_error(server)
    assert error.kind == "http_4xx" and error.status_code == 400 and error.attempts == 1
    assert "bad messages" in str(error)
    assert len(server.requests) == 1


def test_401_without_a_key_names_the_environment_variable(monkeypatch):
    monkeypatch.delenv("CODEFLOW_TEST_KEY", raising=False)
    with FakeOpenAIServer([http_error(401, "invalid api key")]) as server:
        error = expect_error(server)
    assert error.kind == "http_4xx" and "$CODEFLOW_TEST_KEY" in str(error)


def test_connection_refused_is_a_connection_error():
    server = FakeOpenAIServer().start()
    url = server.base_url
    server.stop()  # nothing listens on that port any more

    async def go():
        async with OpenAIClient(url, "m", max_retries=1, backoff_base_s=0.001, backoff_cap_s=0.001) as client:
            await client.chat(CHAT)

    with pytest.raises(LLMError) as caught:
        asyncio.run(go())
    assert caught.value.kind == "connection" and caught.value.attempts == 2


def test_mixed_failures_follow_the_retry_policy_and_count_requests():
    script = [rate_limited(0.05), server_error(500), hang(5.0), malformed(), drop(), answer("done")]
    with FakeOpenAIServer(script) as server:

        async def go():
            async with make_client(server, timeout_s=0.3, max_retries=6) as client:
                response = await client.chat(CHAT)
                return response, client.usage_totals()

        response, totals = asyncio.run(go())
    assert response.text == "done" and response.attempts == 6
    assert len(server.requests) == 6
    assert totals["requests_sent"] == 6 and totals["retries"] == 5
    assert totals["calls_ok"] == 1 and totals["calls_failed"] == 0


# -- limits, counters, reuse --------------------------------------------------------------------------------


def test_concurrency_bounds_requests_in_flight():
    async def go(server):
        async with make_client(server, concurrency=3) as client:
            return await asyncio.gather(*(client.chat(CHAT) for _ in range(7)))

    # each answer takes 0.3 s, long enough for the client to fill all its slots even on a loaded machine
    with FakeOpenAIServer(default=answer("ok", delay_s=0.3)) as server:
        responses = asyncio.run(go(server))
    assert len(responses) == 7 and len(server.requests) == 7
    assert server.max_in_flight == 3


def test_rpm_limit_spaces_request_starts():
    async def go(server):
        async with make_client(server, concurrency=8, rpm=600) as client:  # one start every 0.1 s
            await asyncio.gather(*(client.chat(CHAT) for _ in range(4)))

    with FakeOpenAIServer() as server:
        asyncio.run(go(server))
    gaps = server.arrival_gaps()
    assert len(gaps) == 3
    # The 4th start is due 0.3 s after the 1st was reserved; only the 1st request's own transit delay
    # (connecting, a busy machine) can shrink the measured span, so allow that much and no more.
    assert sum(gaps) >= 0.2


def test_usage_and_counters_are_summed_over_calls():
    script = [
        answer("a", prompt_tokens=10, completion_tokens=1),
        server_error(500),
        answer("b", prompt_tokens=20, completion_tokens=2),
        http_error(400),
        answer("c", prompt_tokens=30, completion_tokens=3),
    ]

    async def go(server):
        async with make_client(server, concurrency=1) as client:
            results = [await client.chat(CHAT), await client.chat(CHAT)]
            with pytest.raises(LLMError):
                await client.chat(CHAT)
            results.append(await client.chat(CHAT))
            return results, client.usage_totals()

    with FakeOpenAIServer(script) as server:
        results, totals = asyncio.run(go(server))
    assert [r.text for r in results] == ["a", "b", "c"]
    assert totals == {
        "prompt_tokens": 60,
        "completion_tokens": 6,
        "requests_sent": 5,
        "retries": 1,
        "calls_ok": 3,
        "calls_failed": 1,
    }


def test_chat_many_returns_errors_in_place_of_answers():
    async def go(server):
        async with make_client(server, concurrency=1, max_retries=0) as client:
            return await client.chat_many([CHAT, CHAT, CHAT])

    with FakeOpenAIServer([answer("one"), http_error(400), answer("three")]) as server:
        results = asyncio.run(go(server))
    assert results[0].text == "one" and results[2].text == "three"
    assert isinstance(results[1], LLMError) and results[1].status_code == 400


def test_client_is_reusable_across_event_loops():
    with FakeOpenAIServer() as server:
        client = make_client(server)
        first = asyncio.run(client.chat(CHAT))
        second = asyncio.run(client.complete("x"))
        asyncio.run(client.aclose())
    assert first.text == second.text == "ok"
    assert client.requests_sent == 2


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError, match="token_param"):
        OpenAIClient("http://localhost:1/v1", "m", token_param="max_length")
    with pytest.raises(ValueError, match="base_url"):
        OpenAIClient("localhost:8000/v1", "m")
    with pytest.raises(ValueError, match="concurrency"):
        OpenAIClient("http://localhost:1/v1", "m", concurrency=0)


def test_importing_the_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, codeflow.llm; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
