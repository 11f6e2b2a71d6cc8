"""focal-dpo eval, the parts that need no sandbox and no model: pass@k, benchmark files, programs, reports."""

from __future__ import annotations

import json
from math import comb

import pytest

from focal_dpo.eval.passk import mean_pass_at_k, pass_at_k, reported_ks
from focal_dpo.eval.problems import Problem, ProblemFileError, StdioCase, read_problems_jsonl
from focal_dpo.eval.programs import (
    build_program,
    prompt_is_code,
    render_prompt,
    stop_strings,
    truncate_at_stop,
)
from focal_dpo.eval.report import compare, summarize
from focal_dpo.eval.results import SampleResult, append_results, read_results


def eval_main(argv: list[str]) -> int:
    """`focal-dpo` with only the eval subcommand, so these tests do not depend on the train module."""
    from codeflow.cli import build_parser, run

    return run(build_parser("focal-dpo", ["focal_dpo.eval"], ""), argv)


# -- pass@k ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, c, k",
    [
        (1, 0, 1),
        (1, 1, 1),
        (10, 3, 1),
        (10, 3, 5),
        (10, 3, 7),
        (10, 3, 8),
        (20, 1, 10),
        (200, 13, 100),
        (5, 5, 2),
    ],
)
def test_pass_at_k_matches_closed_form(n, c, k):
    expected = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_pass_at_1_is_the_pass_fraction():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)


def test_mean_pass_at_k_averages_problems():
    counts = [(10, 0), (10, 10), (10, 5)]
    expected = (0.0 + 1.0 + (1 - comb(5, 2) / comb(10, 2))) / 3
    assert mean_pass_at_k(counts, 2) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 10)


def test_reported_ks_are_those_n_can_estimate():
    assert reported_ks(1) == [1]
    assert reported_ks(10) == [1, 10]
    assert reported_ks(200) == [1, 10, 100]


# -- benchmark files ---------------------------------------------------------------------------------------


def _write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_benchmark_file_reads_all_three_test_styles(tmp_path):
    path = _write_jsonl(
        tmp_path / "bench.jsonl",
        [
            {
                "task_id": "a",
                "prompt": "def f(x):\n",
                "tests": "def check(candidate):\n    assert candidate(1)\n",
                "entry_point": "f",
            },
            {"task_id": "b", "prompt": "Write g.", "tests": "import unittest\n", "test_style": "unittest"},
            {
                "task_id": "c",
                "prompt": "Echo.",
                "tests": [{"stdin": "1\n", "stdout": "1\n"}],
                "test_style": "stdio",
            },
        ],
    )
    a, b, c = read_problems_jsonl(path)
    assert a.tests.endswith("check(f)\n"), "HumanEval-style tests get their check(entry_point) call"
    assert (b.test_style, b.entry_point) == ("unittest", None)
    assert c.tests == (StdioCase("1\n", "1\n"),)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"task_id": "x", "tests": "assert 1"}', "missing field 'prompt'"),
        (
            '{"task_id": "x", "prompt": "p", "tests": "assert 1", "test_style": "doctest"}',
            "test_style 'doctest'",
        ),
        ('{"task_id": "x", "prompt": "p", "tests": "x", "test_style": "stdio"}', "stdio tests must be"),
        ('{"task_id": "a", "prompt": "p", "tests": "assert 1"}', "duplicate task_id 'a' (first on line 1)"),
        ('{"task_id": "x", "prompt": "p", "tests": "assert 1", "entry_point": "not valid"}', "entry_point"),
    ],
)
def test_bad_benchmark_line_is_reported_with_file_and_line(tmp_path, bad_line, message):
    path = _write_jsonl(
        tmp_path / "bench.jsonl", [{"task_id": "a", "prompt": "p", "tests": "assert 1"}, bad_line]
    )
    with pytest.raises(ProblemFileError) as err:
        read_problems_jsonl(path)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)


# -- from answer to program --------------------------------------------------------------------------------

CODE_PROMPT = Problem(
    "t", 'import math\n\ndef f(x):\n    """Double x."""\n', "assert f(2) == 4", entry_point="f"
)
PROSE_PROMPT = Problem("p", "Write a function f that doubles x.", "assert f(2) == 4", entry_point="f")


def test_prompt_is_code_tells_code_prefixes_from_prose():
    assert prompt_is_code(CODE_PROMPT.prompt)
    assert not prompt_is_code(PROSE_PROMPT.prompt)
    assert prompt_is_code("def add(a, b):\n"), "a bare signature awaits its body"
    assert not prompt_is_code("hello")  # parses as an expression, but is no code prefix


def test_completion_is_cut_at_the_first_stop_string():
    answer = "    return 2 * x\n\n\ndef unrelated():\n    pass\n"
    completion, program = build_program(CODE_PROMPT, answer, chat=False)
    assert completion == "    return 2 * x\n\n"
    assert program == CODE_PROMPT.prompt + completion
    assert truncate_at_stop("a\n#b\nprint(1)", ["\nprint(", "\n#"]) == "a"


def test_chat_answer_with_the_whole_function_follows_the_prompt():
    answer = "Sure:\n```python\ndef f(x):\n    return math.floor(2 * x)\n```\nDone."
    completion, program = build_program(CODE_PROMPT, answer, chat=True)
    assert completion == "def f(x):\n    return math.floor(2 * x)\n"
    # the prompt's import stays in scope; its stub is redefined by the answer
    assert program.startswith(CODE_PROMPT.prompt) and program.endswith(completion)
    ns: dict = {}
    exec(program, ns)
    assert ns["f"](2) == 4


def test_chat_answer_with_only_a_body_continues_the_prompt():
    completion, program = build_program(CODE_PROMPT, "```python\n    return 2 * x\n```", chat=True)
    assert program == CODE_PROMPT.prompt + "    return 2 * x\n"


def test_prose_prompt_runs_the_extracted_code_alone():
    completion, program = build_program(
        PROSE_PROMPT, "```python\ndef f(x):\n    return 2 * x\n```", chat=True
    )
    assert program == "def f(x):\n    return 2 * x\n"


def test_chat_prompt_wraps_code_prefixes_and_keeps_prose():
    assert CODE_PROMPT.prompt in render_prompt(CODE_PROMPT, chat=True)
    assert "```python" in render_prompt(CODE_PROMPT, chat=True)
    assert render_prompt(CODE_PROMPT, chat=False) == CODE_PROMPT.prompt
    assert render_prompt(PROSE_PROMPT, chat=True) == PROSE_PROMPT.prompt


def test_stop_strings_only_for_completion_of_code_prefixes():
    assert "\ndef " in stop_strings([CODE_PROMPT], chat=False)
    assert stop_strings([CODE_PROMPT], chat=True) == []
    assert stop_strings([CODE_PROMPT, PROSE_PROMPT], chat=False) == []


# -- results.jsonl ------------------------------------------------------------------------------------------


def test_results_round_trip_and_a_half_written_last_line_is_dropped(tmp_path):
    path = tmp_path / "results.jsonl"
    rows = [SampleResult("a", 0, "x", "passed"), SampleResult("b", 0, "y", "error", "NameError", None, "m")]
    append_results(path, rows)
    with path.open("a") as f:
        f.write('{"task_id": "c", "sample": 0, "compl')  # a crash in the middle of a write
    results = read_results(path)
    assert list(results) == [("a", 0), ("b", 0)]
    assert results[("b", 0)].error_type == "NameError"
    append_results(path, [SampleResult("c", 0, "z", "passed")])
    assert list(read_results(path)) == [("a", 0), ("b", 0), ("c", 0)]


# -- summaries and --compare -------------------------------------------------------------------------------


def test_summary_counts_statuses_errors_and_passes_per_problem():
    problems = [Problem(t, "p", "assert 1") for t in ("a", "b")]
    results = {
        ("a", 0): SampleResult("a", 0, "", "passed"),
        ("a", 1): SampleResult("a", 1, "", "failed", "AssertionError"),
        ("b", 0): SampleResult("b", 0, "", "error", "NameError"),
        ("b", 1): SampleResult("b", 1, "", "timeout"),
    }
    s = summarize(problems, results, n=2, run={"benchmark": "x", "model": "m", "temperature": 0.8})
    assert s["pass_at_k"] == {"pass@1": pytest.approx(0.25)}
    assert s["status_counts"] == {"passed": 1, "failed": 1, "error": 1, "timeout": 1}
    assert s["top_error_types"] == {"AssertionError": 1, "NameError": 1, "timeout": 1}
    assert s["problems_passed"] == {"a": 1, "b": 0}


def test_summary_refuses_missing_samples():
    with pytest.raises(ValueError, match="1 of 1 samples have no result"):
        summarize([Problem("a", "p", "assert 1")], {}, n=1, run={})


def _summary(passed: dict[str, int], n: int = 1, **extra) -> dict:
    return {
        "benchmark": "humaneval",
        "model": extra.pop("model", "m"),
        "n": n,
        "temperature": 0.0,
        "pass_at_k": {"pass@1": sum(passed.values()) / (n * len(passed))},
        "status_counts": extra.pop("status_counts", {}),
        "top_error_types": extra.pop("top_error_types", {}),
        "problems_passed": passed,
    }


def test_compare_lists_fixed_and_broken_problems():
    base = _summary({"p1": 0, "p2": 1, "p3": 0, "p4": 1}, model="base")
    trained = _summary({"p1": 1, "p2": 0, "p3": 0, "p4": 1}, model="trained")
    c = compare(base, trained)
    assert (c.fixed, c.broken) == (["p1"], ["p2"])


def test_compare_with_several_samples_uses_the_majority():
    a = _summary({"p1": 2, "p2": 3, "p3": 1}, n=4)
    b = _summary({"p1": 3, "p2": 2, "p3": 4}, n=4)
    c = compare(a, b)
    assert (c.fixed, c.broken) == (["p1", "p3"], ["p2"])


def test_compare_cli_prints_side_by_side_table(tmp_path, capsys):
    for name, passed, errors in [
        ("base", {"HumanEval/0": 0, "HumanEval/1": 1, "HumanEval/2": 0}, {"NameError": 2}),
        ("trained", {"HumanEval/0": 1, "HumanEval/1": 0, "HumanEval/2": 1}, {"NameError": 1}),
    ]:
        (tmp_path / name).mkdir()
        summary = _summary(passed, model=name, top_error_types=errors)
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    rc = eval_main(
        ["eval", "--compare", str(tmp_path / "base/summary.json"), str(tmp_path / "trained/summary.json")]
    )
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["base", "trained", "delta"]
    assert any(line.split() == ["pass@1", "0.3333", "0.6667", "+0.3333"] for line in lines)
    assert any(line.split() == ["error", "NameError", "2", "1", "-1"] for line in lines)
    assert "fixed in trained (2): HumanEval/0, HumanEval/2" in out
    assert "broken in trained (1): HumanEval/1" in out


def test_compare_cli_names_a_missing_summary(tmp_path, capsys):
    rc = eval_main(["eval", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert rc == 2
    assert "a.json: no such summary" in capsys.readouterr().err
