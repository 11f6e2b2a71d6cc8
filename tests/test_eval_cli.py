"""`focal-dpo eval` from the command line: the model options shared with `codeflow build` reach the server, a
failed start does not block the corrected rerun, and bad input is one stderr line with exit 2."""

from __future__ import annotations

import json

import pytest

from codeflow.humaneval import load_humaneval
from tests.fake_openai_server import FakeOpenAIServer, answer, http_error, server_error


def eval_main(argv: list[str]) -> int:
    """`focal-dpo` with only the eval subcommand, so these tests do not depend on the train module."""
    from codeflow.cli import build_parser, run

    try:
        return run(build_parser("focal-dpo", ["focal_dpo.eval"], ""), argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code)


def canonical(request) -> str:
    found = next(p for p in load_humaneval()[:2] if p["prompt"] in request.prompt_text)
    return found["canonical_solution"]


def test_the_shared_model_options_reach_every_request(tmp_path):
    script = [server_error(503), answer(canonical)]  # the first request is retried (--max-retries 1)
    with FakeOpenAIServer(script, default=answer(canonical)) as server:
        argv = [
            "eval",
            "--backend",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "served",
            "--limit",
            "2",
        ]
        argv += [
            "--extra-body",
            '{"top_p": 0.9}',
            "--token-param",
            "max_completion_tokens",
            "--max-retries",
            "1",
        ]
        argv += ["--request-timeout", "5", "--batch-size", "1", "--out", str(tmp_path), "--no-progress"]
        assert eval_main(argv) == 0
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 3
    assert all(b["top_p"] == 0.9 and b["model"] == "served" for b in bodies)
    # completions only know max_tokens, whatever the chat requests are told to use
    assert all(b["max_tokens"] == 768 and "max_completion_tokens" not in b for b in bodies)
    assert json.loads((tmp_path / "summary.json").read_text())["pass_at_k"] == {"pass@1": 1.0}


def test_a_failed_start_does_not_block_the_corrected_rerun(tmp_path, capsys):
    out = tmp_path / "out"
    with FakeOpenAIServer(default=http_error(400, "model 'wrong' is not served here")) as bad:
        argv = ["eval", "--backend", "openai", "--base-url", bad.base_url, "--limit", "2", "--out", str(out)]
        assert eval_main([*argv, "--model", "wrong", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "2 samples got no answer (http_4xx 2" in err[0] and "is not served here" in err[0]
    )
    with FakeOpenAIServer(default=answer(canonical)) as good:
        argv = ["eval", "--backend", "openai", "--base-url", good.base_url, "--limit", "2", "--out", str(out)]
        assert eval_main([*argv, "--model", "right", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["model"] == "right"
    # once it holds results, another model's run into it is refused
    assert eval_main([*argv, "--model", "other", "--no-progress"]) == 2
    assert "holds another run's results" in capsys.readouterr().err


def test_compare_takes_run_directories(tmp_path, capsys):
    for name, passed in (("base", {"a": 0, "b": 1}), ("tuned", {"a": 1, "b": 1})):
        (tmp_path / name).mkdir()
        summary = {"benchmark": "x", "model": name, "n": 1, "pass_at_k": {"pass@1": sum(passed.values()) / 2}}
        (tmp_path / name / "summary.json").write_text(json.dumps(summary | {"problems_passed": passed}))
    assert eval_main(["eval", "--compare", str(tmp_path / "base"), str(tmp_path / "tuned")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["base", "tuned", "delta"] and "fixed in tuned (1): a" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "m", "--benchmark", "{tmp}"], "--benchmark {tmp}: a directory"),
        (["--model", "m", "--benchmark", "{tmp}/none.jsonl"], "none.jsonl: no such file"),
        (["--compare", "{tmp}", "{tmp}"], "no summary.json in this directory"),
        (["--model", "m", "--extra-body", "{{"], "--extra-body: not valid JSON"),
        (["--model", "m", "--n", "0"], "--n must be at least 1"),
        (["--model", "m", "--backend", "vllm"], "argument --backend: invalid choice"),
        (["--benchmark", "humaneval"], "--model is required"),
        (["--model", "{tmp}/no-model", "--limit", "1", "--no-progress"], "no-model: no such model directory"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert eval_main(["eval", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0] and err[0].startswith("focal-dpo eval"), (
        err
    )


def test_help_shows_defaults_and_the_backends(capsys):
    assert eval_main(["eval", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: transformers)", "(default: humaneval)", "(default: 768)", "openai: any OpenAI"):
        assert shown in text, shown
