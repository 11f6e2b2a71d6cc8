"""`codeflow build --llm openai` against a scripted fake OpenAI-compatible server on 127.0.0.1: rate limits,
server errors, hangs, malformed bodies and truncated answers; every problem ends with a recorded outcome and
the number of requests is what the retry policy allows."""

from __future__ import annotations

import json

from codeflow.pipeline.build import BuildConfig, build
from tests.fake_openai_server import (
    FakeOpenAIServer,
    ScriptByContent,
    answer,
    hang,
    malformed,
    rate_limited,
    server_error,
    truncated,
)
from tests.pipeline_helpers import run_sql

TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
GOOD = "def add(a, b):\n    return a + b\n"
BAD = "def add(a, b):\n    return a - b\n"


def solution(code: str, tests: str | None = None) -> str:
    text = f"Here you go.\n\n### solution.py\n```python\n{code}```\n"
    return text + (f"\n### test_solution.py\n```python\n{tests}```\n" if tests else "")


# key in the instruction -> (with tests?, what the server does for each request, requests the policy allows)
MAX_RETRIES = 2  # so a call is at most 3 HTTP requests
SCRIPTS = {
    "[rate]": (True, [rate_limited(0.2), answer(solution(BAD)), answer(solution(GOOD))], 3),
    "[down]": (True, [server_error(500)], 3),
    "[slow]": (True, [hang(3.0), answer(solution(GOOD))], 2),
    "[garbled]": (True, [malformed(), answer(solution(GOOD))], 2),
    "[cut]": (True, [truncated(solution(BAD)[:40]), answer(solution(GOOD))], 2),
    "[gen]": (
        False,
        [
            answer(solution(BAD, TESTS)),
            answer(solution(GOOD, "assert True\n")),  # weakens the frozen tests: rejected
            answer(solution(GOOD, TESTS)),
        ],
        3,
    ),
    "[notests]": (False, [answer(solution(GOOD)), answer(solution(GOOD, TESTS))], 2),  # first lacks tests
    "[stuck]": (True, [answer(solution(BAD))], 3),  # max_iterations=2: three attempts, all failing
}
EXPECTED = {
    "[rate]": ("passed", 1),
    "[down]": ("llm_error", None),
    "[slow]": ("passed", 0),
    "[garbled]": ("passed", 0),
    "[cut]": ("passed", 1),
    "[gen]": ("passed", 2),
    "[notests]": ("passed", 1),
    "[stuck]": ("exhausted", 2),
}


def _problems(tmp_path):
    path = tmp_path / "problems.jsonl"
    rows = []
    for key, (with_tests, _, _) in SCRIPTS.items():
        row = {"id": key.strip("[]"), "instruction": f"{key} Write add(a, b) returning the sum of a and b."}
        if with_tests:
            row["tests"] = TESTS
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_build_against_flaky_server_records_every_outcome_and_respects_retry_policy(tmp_path):
    script = ScriptByContent({key: behaviours for key, (_, behaviours, _) in SCRIPTS.items()})
    with FakeOpenAIServer(script) as server:
        config = BuildConfig(
            problems=str(_problems(tmp_path)),
            out=str(tmp_path / "run"),
            llm="openai",
            model="fake-model",
            base_url=server.base_url,
            request_timeout_s=0.5,
            max_retries=MAX_RETRIES,
            max_iterations=2,
            concurrency=4,
            exec_timeout_s=5,
            progress=False,
            no_humaneval=True,
        )
        result = build(config)
        for key, (_, _, allowed) in SCRIPTS.items():
            assert script.requests_for(key) == allowed, key
        assert server.request_count() == sum(n for _, _, n in SCRIPTS.values())

        run = tmp_path / "run"
        outcomes = {r["problem_id"]: r for r in run_sql(run, "SELECT * FROM outcomes")}
        kinds = {
            (r["problem_id"], r["iteration"]): r["answer_kind"]
            for r in run_sql(run, "SELECT problem_id, iteration, answer_kind FROM attempts")
        }
        usage = run_sql(run, "SELECT SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c FROM llm_calls")[0]
        for key, (status, final) in EXPECTED.items():
            o = outcomes[key.strip("[]")]
            assert (o["status"], o["final_iteration"]) == (status, final), key
            assert o["reason"]
        assert "http_5xx after 3 requests" in outcomes["down"]["reason"]
        assert kinds[("cut", 0)] == "truncated"
        assert kinds[("gen", 1)] == "tests_edited"
        assert kinds[("notests", 0)] == "no_tests"
        assert usage["p"] > 0 and usage["c"] > 0

        # the refinement request carried the failing code, the frozen tests and the sandbox's verdict
        refine = [r for r in server.requests if "[rate]" in r.prompt_text][-1].prompt_text
        assert "return a - b" in refine and "assert add(1, 2) == 3" in refine and "Status: failed" in refine

        pairs = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
        assert {p["problem_id"]: (p["rejected_iteration"], p["chosen_iteration"]) for p in pairs} == {
            "rate": (0, 1),
            "gen": (0, 2),
        }
        gen = next(p for p in pairs if p["problem_id"] == "gen")
        assert gen["tests"] == TESTS and gen["meta"]["model"] == "fake-model"
        assert result.outcomes["llm_error"] == 1

        # a rerun sends only the request that never got an answer (and fails the same way again)
        before = server.request_count()
        again = build(config)
        assert server.request_count() - before == MAX_RETRIES + 1
        assert again.calls == 1
        assert (tmp_path / "run" / "pairs.jsonl").read_text().splitlines() == [json.dumps(p) for p in pairs]

    # --judge on the finished run: one judge request per pair; a "COSMETIC" verdict drops its pair, and the
    # verdicts are cached like every other answer
    verdicts = iter(["COSMETIC", "FUNCTIONAL"])

    def judge_script(request):
        if "FUNCTIONAL or COSMETIC" in request.prompt_text:
            return answer(next(verdicts, "FUNCTIONAL"))
        return server_error(500)  # the "[down]" problem is retried by every rerun, and fails again

    def judge_requests():
        return sum("FUNCTIONAL or COSMETIC" in r.prompt_text for r in judge_server.requests)

    with FakeOpenAIServer(judge_script) as judge_server:
        config.base_url, config.judge = judge_server.base_url, True
        judged = build(config)
        assert judge_requests() == 2 and judged.pairs == 1
        assert judged.verdicts["judge_cosmetic"] == 1
        again = build(config)
        assert judge_requests() == 2 and again.pairs == 1


def test_build_with_a_local_transformers_model_records_its_attempts(tmp_path, tiny_model_dir):
    """A random tiny model writes no usable code: every attempt is recorded as a failed answer, nothing crashes."""
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"id": "t", "instruction": "Write add(a, b).", "tests": TESTS}) + "\n")
    config = BuildConfig(
        problems=str(problems),
        out=str(tmp_path / "run"),
        llm="transformers",
        model=str(tiny_model_dir),
        max_new_tokens=8,
        max_iterations=1,
        progress=False,
        no_humaneval=True,
    )
    result = build(config)
    assert result.calls == 2 and result.pairs == 0
    run = tmp_path / "run"
    kinds = [r["answer_kind"] for r in run_sql(run, "SELECT answer_kind FROM attempts ORDER BY iteration")]
    outcome = run_sql(run, "SELECT status FROM outcomes")[0]["status"]
    calls = run_sql(run, "SELECT stage, completion_tokens FROM llm_calls ORDER BY iteration")
    assert len(kinds) == 2 and set(kinds) <= {"truncated", "no_code"}
    assert outcome == "exhausted"
    assert [c["stage"] for c in calls] == ["generate", "refine"] and all(
        c["completion_tokens"] > 0 for c in calls
    )


class _RecordingChatModel:
    """Stands in for codeflow.llm.TransformersBackend: records the batch sizes it is asked for."""

    model_name = "recording-model"

    def __init__(self):
        self.batches: list[int] = []

    def chat(self, conversations, *, max_new_tokens, temperature, seed=None, stop=None):
        from codeflow.llm import LLMResponse

        self.batches.append(len(conversations))
        return [LLMResponse(solution(BAD), "stop") for _ in conversations]


def test_transformers_backend_batches_requests_that_arrive_together(tmp_path):
    import asyncio

    from codeflow.llm import LocalChatModel
    from codeflow.pipeline.backends import ChatBackend, LLMRequest

    model = _RecordingChatModel()
    local = LocalChatModel(model.model_name, batch_size=4, loaded=model)
    backend = ChatBackend(local, max_tokens=16, temperature=0.0, seed=0)
    requests = [LLMRequest("generate", f"p{i}", 0, [{"role": "user", "content": str(i)}]) for i in range(10)]

    async def ask_all():
        return await asyncio.gather(*(backend.answer(r) for r in requests))

    answers = asyncio.run(ask_all())
    assert model.batches == [4, 4, 2]
    assert all(a.text == solution(BAD) for a in answers)
