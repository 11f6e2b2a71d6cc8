"""What real servers do that the protocol does not promise: restarts, stop strings left in the text, the length
parameter /completions knows; and the ChatModel protocol both backends follow."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from codeflow.llm import ChatModel, LLMError, LLMOptions, LocalChatModel, OpenAIClient, open_chat_model
from tests.fake_openai_server import FakeOpenAIServer, answer

CHAT = [{"role": "user", "content": "write add(a, b)"}]


def client_for(url: str, **options) -> OpenAIClient:
    settings = dict(timeout_s=2.0, max_retries=1, backoff_base_s=0.05, backoff_cap_s=0.1, seed=0)
    return OpenAIClient(url, "fake-model", **(settings | options))


def test_a_server_that_went_away_is_waited_for_until_it_is_back():
    server = FakeOpenAIServer().start()
    port, url = server.port, server.base_url

    async def go():
        async with client_for(url, retry_connect_s=30) as client:
            first = await client.chat(CHAT)
            server.stop()  # a restart: connections are refused for a while
            threading.Timer(0.8, server.start, kwargs={"port": port}).start()
            started = time.monotonic()
            second = await client.chat(CHAT)
            return first, second, time.monotonic() - started, client.usage_totals()

    try:
        first, second, waited, totals = asyncio.run(go())
    finally:
        server.stop()
    assert first.attempts == 1 and second.text == "ok"
    assert second.attempts > 2  # refused more often than max_retries allows, and still answered
    assert waited >= 0.8
    assert totals["requests_sent"] == 1 + second.attempts and totals["calls_failed"] == 0
    assert len(server.requests) == 2  # the refused ones never reached it


def test_the_restart_budget_ends_in_a_connection_error():
    server = FakeOpenAIServer().start()
    url = server.base_url

    async def go():
        async with client_for(url, retry_connect_s=0.6) as client:
            await client.chat(CHAT)
            server.stop()
            await client.chat(CHAT)

    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        asyncio.run(go())
    assert caught.value.kind == "connection" and caught.value.attempts >= 2
    assert 0.6 <= time.monotonic() - started < 10


def test_a_server_never_reached_fails_after_the_ordinary_retries():
    server = FakeOpenAIServer().start()
    url = server.base_url
    server.stop()

    async def go():
        async with client_for(url, retry_connect_s=600) as client:
            await client.chat(CHAT)

    with pytest.raises(LLMError) as caught:
        asyncio.run(go())
    assert caught.value.kind == "connection" and caught.value.attempts == 2  # a wrong --base-url fails fast


def test_stop_strings_are_cut_from_the_text_whether_or_not_the_server_did():
    async def go(server):
        async with client_for(server.base_url) as client:
            completion = await client.complete("def f():", max_tokens=8, stop=["\ndef ", "STOP"])
            chat = await client.chat(CHAT, stop=["STOP"])
            plain = await client.chat(CHAT)
            return completion, chat, plain

    with FakeOpenAIServer(default=answer("    return 1\ndef g(): STOP more")) as server:
        completion, chat, plain = asyncio.run(go(server))
    assert (completion.text, completion.finish_reason) == ("    return 1", "stop")
    assert chat.text == "    return 1\ndef g(): "
    assert plain.text == "    return 1\ndef g(): STOP more"


def test_a_stop_string_left_half_in_the_text_is_trimmed_when_the_server_stopped_there():
    async def go(server):
        async with client_for(server.base_url) as client:
            stopped = await client.complete("def f():", max_tokens=8, stop=["\ndef ", "(((("])
            cut_short = await client.complete("def f():", max_tokens=8, stop=["\ndef "])
            return stopped, cut_short

    script = [answer("    return 1\n\nde"), answer("    return 1\n\nde", finish_reason="length")]
    with FakeOpenAIServer(script) as server:
        stopped, cut_short = asyncio.run(go(server))
    assert stopped.text == "    return 1\n"  # "\nde" began "\ndef ": what transformers serve leaves
    assert cut_short.text == "    return 1\n\nde"  # cut by the token limit: nothing to trim


def test_completions_get_max_tokens_whatever_token_param_chat_uses():
    async def go(server):
        async with client_for(server.base_url, token_param="max_completion_tokens") as client:
            await client.chat(CHAT, max_tokens=5)
            await client.complete("x", max_tokens=6)

    with FakeOpenAIServer() as server:
        asyncio.run(go(server))
    chat, completion = (r.body for r in server.requests)
    assert chat["max_completion_tokens"] == 5 and "max_tokens" not in chat
    assert completion["max_tokens"] == 6 and "max_completion_tokens" not in completion


def test_extra_body_reaches_every_request():
    options = LLMOptions(model="fake-model", extra_body={"top_p": 0.5, "repetition_penalty": 1.1})
    with FakeOpenAIServer() as server:
        options.base_url = server.base_url
        model = open_chat_model("openai", options)

        async def go():
            await model.chat(CHAT)
            await model.complete("x")
            await model.aclose()

        asyncio.run(go())
    assert all(r.body["top_p"] == 0.5 and r.body["repetition_penalty"] == 1.1 for r in server.requests)


class _CountingModel:
    """Stands in for a TransformersBackend: records each batch it is asked to generate."""

    model_name = "counting"

    def __init__(self):
        from codeflow.llm import LLMResponse

        self.response = LLMResponse
        self.batches: list[tuple[str, int, float, int | None]] = []

    def chat(self, conversations, *, max_new_tokens, temperature, seed=None, stop=None):
        self.batches.append(("chat", len(conversations), temperature, seed))
        return [self.response(str(c[-1]["content"]), "stop") for c in conversations]

    def generate(self, prompts, *, max_new_tokens, temperature, seed=None, stop=None):
        self.batches.append(("complete", len(prompts), temperature, seed))
        return [self.response(p.upper(), "stop") for p in prompts]


def test_a_local_model_batches_the_calls_that_arrive_together_by_their_settings():
    fake = _CountingModel()
    model = LocalChatModel("counting", batch_size=3, loaded=fake)
    assert isinstance(model, ChatModel) and isinstance(client_for("http://x"), ChatModel)

    async def go():
        calls = [model.chat([{"role": "user", "content": str(i)}], seed=i) for i in range(4)]
        calls += [model.complete(f"p{i}", temperature=0.5, seed=10 + i) for i in range(2)]
        return await asyncio.gather(*calls)

    answers = asyncio.run(go())
    assert [a.text for a in answers] == ["0", "1", "2", "3", "P0", "P1"]
    assert fake.batches == [("chat", 3, 0.0, 0), ("chat", 1, 0.0, 3), ("complete", 2, 0.5, 10)]


def test_the_registry_names_its_backends_and_needs_a_model():
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        open_chat_model("vllm", LLMOptions(model="m"))
    with pytest.raises(ValueError, match="needs --model"):
        open_chat_model("openai", LLMOptions())
    assert open_chat_model("transformers", LLMOptions(model="some/dir")).backend == "transformers"
