"""The scripted fake server that other tests (the pipeline's included) build their scenarios on."""

from __future__ import annotations

import httpx

from tests.fake_openai_server import FakeOpenAIServer, ScriptByContent, answer, http_error, rate_limited


def post_chat(client: httpx.Client, content: str) -> httpx.Response:
    return client.post(
        "chat/completions", json={"model": "m", "messages": [{"role": "user", "content": content}]}
    )


def test_list_script_then_default_and_request_log():
    with FakeOpenAIServer([rate_limited(2), answer("first")], default=answer("rest")) as server:
        with httpx.Client(base_url=server.base_url + "/") as client:
            statuses = [post_chat(client, "hello world") for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 200, 200]
    assert statuses[0].headers["retry-after"] == "2"
    assert [r.json()["choices"][0]["message"]["content"] for r in statuses[1:]] == ["first", "rest"]
    assert statuses[1].json()["usage"] == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    assert [r.index for r in server.requests] == [0, 1, 2]
    assert server.requests[0].prompt_text == "hello world"


def test_script_by_content_routes_each_problem_through_its_own_list():
    script = ScriptByContent({"problem-a": [http_error(500), answer("a")], "problem-b": [answer("b")]})
    with FakeOpenAIServer(script, default=answer("other")) as server:
        with httpx.Client(base_url=server.base_url + "/") as client:
            replies = [
                post_chat(client, text)
                for text in [
                    "solve problem-b",
                    "solve problem-a",
                    "solve problem-a",
                    "solve problem-a",
                    "none",
                ]
            ]
    assert [r.status_code for r in replies] == [200, 500, 200, 200, 200]
    texts = [r.json()["choices"][0]["message"]["content"] for r in replies if r.status_code == 200]
    assert texts == ["b", "a", "a", "other"]  # the last entry repeats; unmatched prompts get the default
    assert script.requests_for("problem-a") == 3 and script.requests_for("problem-b") == 1


def test_answer_text_can_depend_on_the_request():
    with FakeOpenAIServer(default=answer(lambda request: request.prompt_text.upper())) as server:
        with httpx.Client(base_url=server.base_url + "/") as client:
            reply = client.post("completions", json={"model": "m", "prompt": "abc"})
    assert reply.json()["choices"][0]["text"] == "ABC"
    assert reply.json()["object"] == "text_completion"
