"""`codeflow build` as a person meets it: failed model calls exit 1 with one example per error kind and how to go
on; a rerun says it is resuming and its calls and HTTP requests add up with the first run's; bad input is one
stderr line and exit 2."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from codeflow.cli import main as codeflow_main
from codeflow.pipeline.stats import collect
from tests.fake_openai_server import FakeOpenAIServer, ScriptByContent, answer, http_error, server_error
from tests.pipeline_helpers import run_sql

TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
GOOD = "### solution.py\n```python\ndef add(a, b):\n    return a + b\n```\n"


def problems_file(tmp_path, keys):
    path = tmp_path / "problems.jsonl"
    rows = [{"id": k.strip("[]"), "instruction": f"{k} Write add(a, b).", "tests": TESTS} for k in keys]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build_argv(problems, out, url, *more):
    argv = ["build", str(problems), "--out", str(out), "--llm", "openai", "--model", "m", "--base-url", url]
    return argv + ["--no-progress", "--no-humaneval", "--max-retries", "1", *more]


def test_failed_calls_exit_1_with_an_example_per_error_kind_and_the_rerun_retries_only_them(tmp_path, capsys):
    keys = ["[ok]", "[bad1]", "[bad2]", "[down]"]
    script = ScriptByContent(
        {
            "[bad1]": [http_error(400, "unknown model 'm'")],
            "[bad2]": [http_error(400, "unknown model 'm'")],
            "[down]": [server_error(503, "overloaded")],
        },
        default=answer(GOOD),
    )
    problems, out = problems_file(tmp_path, keys), tmp_path / "run"
    with FakeOpenAIServer(script) as server:
        argv = build_argv(problems, out, server.base_url, "--request-timeout", "5")
        assert codeflow_main(argv) == 1
        captured = capsys.readouterr()
        err = captured.err.splitlines()
        assert "codeflow build: 3 problem(s) ended in llm_error" in err[0]
        assert re.fullmatch(
            r"  http_4xx: 2 problem\(s\), e\.g\. bad1: POST .* HTTP 400: .*unknown model 'm'.*", err[1]
        )
        assert re.fullmatch(
            r"  http_5xx: 1 problem\(s\), e\.g\. down: .*failed after 2 request\(s\).*overloaded.*", err[2]
        )
        assert "rerun the same command" in err[3]
        first_calls = re.search(r"\((\d+) model calls this run, (\d+) HTTP requests\)", captured.out)
        assert first_calls.groups() == ("4", "5")  # the 503 was retried once

        # the server is fixed: the rerun says where it stands and asks only for what failed
        script._scripts.update({k: [answer(GOOD)] for k in ("[bad1]", "[bad2]", "[down]")})
        script._used.update(dict.fromkeys(("[bad1]", "[bad2]", "[down]"), 0))
        assert codeflow_main(argv) == 0
        captured = capsys.readouterr()
        assert "resuming: 1 of 4 problems finished" in captured.err
        second_calls = re.search(r"\((\d+) model calls this run, (\d+) HTTP requests\)", captured.out)
        assert second_calls.groups() == ("3", "3")
        assert len(server.requests) == 5 + 3

    # every call of both runs is kept, the failed ones too: calls and requests add up across the resume
    stats = collect(out)["llm"]["generate"]
    assert (stats["calls"], stats["requests"], stats["errors"]) == (7, 8, 3)
    assert run_sql(out, "SELECT COUNT(*) AS n FROM outcomes WHERE status = 'passed'")[0]["n"] == 4
    text = capsys.readouterr().out
    assert codeflow_main(["stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"generate\s+calls\s+7\s+errors\s+3\s+truncated\s+0\s+requests\s+8", text)


def test_a_finished_run_resumes_with_nothing_to_do(tmp_path, capsys):
    problems, out = problems_file(tmp_path, ["[a]", "[b]"]), tmp_path / "run"
    with FakeOpenAIServer(default=answer(GOOD)) as server:
        argv = build_argv(problems, out, server.base_url)
        assert codeflow_main(argv) == 0
        assert "resuming" not in capsys.readouterr().err
        assert codeflow_main(argv) == 0
        captured = capsys.readouterr()
    assert "resuming: 2 of 2 problems finished" in captured.err
    assert "(0 model calls this run, 0 HTTP requests)" in captured.out


def test_a_run_directory_of_an_older_version_is_refused_on_one_line(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    conn = sqlite3.connect(out / "codeflow.db")
    conn.execute("CREATE TABLE llm_calls (request_hash TEXT PRIMARY KEY)")  # schema 1 had no user_version
    conn.commit()
    conn.close()
    problems = problems_file(tmp_path, ["[a]"])
    for argv in (["build", str(problems), "--out", str(out), "--no-progress"], ["stats", str(out)]):
        assert codeflow_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "written by an older codeflow (run database schema 1" in err[0]
        assert "new --out directory" in err[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["build", "{problems}", "--out", "{out}", "--extra-body", "[1]"],
            "--extra-body: must be a JSON object",
        ),
        (
            ["build", "{problems}", "--out", "{out}", "--llm", "vllm"],
            "argument --llm: invalid choice: 'vllm'",
        ),
        (
            ["build", "{problems}", "--out", "{out}", "--llm", "openai"],
            "--llm openai: the openai backend needs --model",
        ),
        (["build", "{problems}", "--out", "{out}", "--shard", "2/2"], "--shard '2/2': K must be 0 to N-1"),
        (["build", "{problems}", "--out", "{problems}"], "a file, not a directory"),
        (["build", "{problems}"], "required: --out"),
        (["build", "{empty}", "--out", "{out}"], "a directory with no problems file"),
        (["stats", "{tmp}"], "no run database here"),
        (["show", "{tmp}"], "no pairs file"),
        (["merge", "{out}", "--out", "{tmp}/m"], "no run database here"),
    ],
)
def test_bad_input_is_one_stderr_line_naming_it_with_exit_2(tmp_path, capsys, argv, message):
    problems = problems_file(tmp_path, ["[a]"])
    (tmp_path / "empty").mkdir()
    values = {
        "problems": str(problems),
        "out": str(tmp_path / "run"),
        "tmp": str(tmp_path),
        "empty": str(tmp_path / "empty"),
    }
    argv = [a.format(**values) for a in argv]
    try:
        rc = codeflow_main(argv)
    except SystemExit as e:  # argparse's own errors exit through SystemExit
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and message in err[0] and err[0].startswith(f"codeflow {argv[0]}: error: "), err


def test_help_shows_every_default_and_what_llm_means(capsys):
    with pytest.raises(SystemExit):
        codeflow_main(["build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "(default: simulate)",
        "(default: 0.2)",
        "(default: 5)",
        "(default: 120.0)",
        "(default: 600.0)",
        "(default: max_tokens)",
        "simulate: offline stand-in",
        "openai: any OpenAI-compatible server",
        "transformers: a local Hugging Face model",
        "--format PRESET the schema of a dataset source: kodcode, taco, apps, codecontests, opencodeinstruct",
    ):
        assert shown in text, shown


@pytest.mark.slow  # three fresh interpreters that load torch and transformers
def test_no_progress_also_hides_the_bars_of_transformers(tmp_path, tiny_model_dir):
    """A local model's "Loading weights" bar shows with progress on and not under --no-progress (build, eval)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    problems = problems_file(tmp_path, ["[a]"])
    build = [sys.executable, "-m", "codeflow.cli", "build", str(problems), "--llm", "transformers"]
    build += [
        "--model",
        str(tiny_model_dir),
        "--max-new-tokens",
        "4",
        "--max-iterations",
        "0",
        "--no-humaneval",
    ]
    shown = subprocess.run(
        [*build, "--out", str(tmp_path / "a")], cwd=root, capture_output=True, text=True, env=env
    )
    hidden = subprocess.run(
        [*build, "--out", str(tmp_path / "b"), "--no-progress"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    assert shown.returncode == hidden.returncode == 0, hidden.stderr[-2000:]
    assert "Loading weights" in shown.stderr
    assert "Loading weights" not in hidden.stderr and "%|" not in hidden.stderr
    evaluate = [sys.executable, "-m", "focal_dpo.cli", "eval", "--model", str(tiny_model_dir), "--limit", "1"]
    evaluate += ["--max-new-tokens", "4", "--out", str(tmp_path / "eval"), "--no-progress"]
    quiet = subprocess.run(evaluate, cwd=root, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and "Loading weights" not in quiet.stderr and "%|" not in quiet.stderr


def test_a_quiet_build_in_process_leaves_the_environment_alone(tmp_path):
    import os

    from codeflow.pipeline.build import BuildConfig, build

    before = dict(os.environ)
    problems = problems_file(tmp_path, ["[a]"])
    build(BuildConfig(problems=str(problems), out=str(tmp_path / "run"), progress=False, no_humaneval=True))
    assert dict(os.environ) == before
