"""focal-dpo eval end to end through its real generators: a tiny local model, and an OpenAI-compatible server."""

from __future__ import annotations

import json

from codeflow.humaneval import load_humaneval
from tests.fake_openai_server import FakeOpenAIServer, ScriptByContent, answer, http_error


def eval_main(argv: list[str]) -> int:
    """`focal-dpo` with only the eval subcommand, so these tests do not depend on the train module."""
    from codeflow.cli import build_parser, run

    return run(build_parser("focal-dpo", ["focal_dpo.eval"], ""), argv)


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tiny_model_runs_end_to_end_through_transformers(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "tiny"
    argv = ["eval", "--model", str(tiny_model_dir), "--benchmark", "humaneval", "--limit", "3"]
    argv += ["--max-new-tokens", "8", "--batch-size", "2", "--out", str(out), "--no-progress"]
    assert eval_main(argv) == 0
    rows = read_lines(out / "results.jsonl")
    assert [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(r["status"] != "passed" and r["completion"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass_at_k"] == {"pass@1": 0.0}
    assert (summary["benchmark"], summary["model"], summary["num_problems"]) == (
        "humaneval",
        str(tiny_model_dir),
        3,
    )
    assert sum(summary["status_counts"].values()) == 3
    printed = capsys.readouterr().out
    assert "pass@1" in printed and "0.0000" in printed and str(out / "summary.json") in printed


def test_tiny_model_chat_mode_uses_the_chat_template(tiny_model_dir, tmp_path):
    out = tmp_path / "chat"
    argv = ["eval", "--model", str(tiny_model_dir), "--limit", "2", "--chat", "--max-new-tokens", "6"]
    assert eval_main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["chat"] is True
    assert len(read_lines(out / "results.jsonl")) == 2


def _canonical_for_prompt(problems: list[dict]):
    def text(request) -> str:
        found = next(p for p in problems if p["prompt"] in request.prompt_text)
        if "messages" in request.body:
            return f"```python\n{found['prompt']}{found['canonical_solution']}```"
        return found["canonical_solution"] + "\n\ndef extra():\n    pass\n"  # the stop string must cut this

    return text


def test_openai_backend_completions_and_chat_through_a_server(tmp_path):
    problems = load_humaneval()[:3]
    with FakeOpenAIServer(default=answer(_canonical_for_prompt(problems))) as server:
        for mode in ([], ["--chat"]):
            out = tmp_path / ("chat" if mode else "completion")
            argv = ["eval", "--backend", "openai", "--base-url", server.base_url, "--model", "served-model"]
            assert eval_main([*argv, *mode, "--limit", "3", "--out", str(out), "--no-progress"]) == 0
            assert json.loads((out / "summary.json").read_text())["pass_at_k"] == {"pass@1": 1.0}
    completions = [r for r in server.requests if r.path.endswith("/completions") and "prompt" in r.body]
    chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(completions) == 3 and len(chats) == 3
    assert "\ndef " in completions[0].body["stop"] and completions[0].body["temperature"] == 0.0
    assert completions[0].body["model"] == "served-model" and "stop" not in chats[0].body


def test_openai_request_that_fails_for_good_is_retried_by_the_next_run(tmp_path, capsys):
    problems = load_humaneval()[:3]
    canonical = answer(_canonical_for_prompt(problems))
    # a 400 is not retried by the client: the sample is left out, and the next run asks again
    script = ScriptByContent(
        {"def separate_paren_groups": [http_error(400, "bad request"), canonical]}, canonical
    )
    out = tmp_path / "run"
    with FakeOpenAIServer(script) as server:
        argv = ["eval", "--backend", "openai", "--base-url", server.base_url, "--model", "m", "--limit", "3"]
        argv += ["--out", str(out), "--no-progress"]
        assert eval_main(argv) == 1
        err = capsys.readouterr().err
        assert (
            "1 samples got no answer (http_4xx 1, e.g. HumanEval/1 sample 0: " in err and "bad request" in err
        )
        assert [r["task_id"] for r in read_lines(out / "results.jsonl")] == ["HumanEval/0", "HumanEval/2"]
        assert eval_main(argv) == 0
        assert len(server.requests) == 4, "the rerun sent only the missing request"
    assert json.loads((out / "summary.json").read_text())["pass_at_k"] == {"pass@1": 1.0}


def test_openai_samples_of_one_problem_get_distinct_seeds(tmp_path):
    problems = load_humaneval()[:1]
    with FakeOpenAIServer(default=answer(_canonical_for_prompt(problems))) as server:
        argv = ["eval", "--backend", "openai", "--base-url", server.base_url, "--model", "m", "--limit", "1"]
        argv += ["--n", "3", "--temperature", "0.8", "--seed", "7", "--out", str(tmp_path), "--no-progress"]
        assert eval_main(argv) == 0
    assert sorted(r.body["seed"] for r in server.requests) == [7, 8, 9]
    assert json.loads((tmp_path / "summary.json").read_text())["problems_passed"] == {"HumanEval/0": 3}
