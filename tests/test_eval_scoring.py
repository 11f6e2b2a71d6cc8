"""focal-dpo eval through the real sandbox, with fake generators in place of a model."""

from __future__ import annotations

import json

import pytest

from focal_dpo.eval.problems import humaneval_problems, read_problems_jsonl
from focal_dpo.eval.runner import EvalSettings, GenerationIncomplete, RunMismatchError, evaluate


@pytest.fixture(scope="module")
def humaneval():
    return humaneval_problems()


def answering(table: dict[str, str]):
    """A fake generator: a fixed answer for each rendered prompt, counting the prompts it was asked."""

    def generate(prompts: list[str]) -> list[str]:
        generate.asked.extend(prompts)
        return [table[p] for p in prompts]

    generate.asked = []
    return generate


def settings(**kw) -> EvalSettings:
    return EvalSettings(**{"benchmark": "humaneval", "model": "fake", "batch_size": 64, **kw})


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_canonical_solutions_score_pass_at_1_of_one(humaneval, tmp_path):
    generate = answering({p.prompt: p.canonical_solution for p in humaneval})
    summary = evaluate(humaneval, generate, tmp_path, settings(), progress=False)
    assert summary["pass_at_k"] == {"pass@1": 1.0}
    assert summary["status_counts"] == {"passed": 164}
    assert summary["num_problems"] == 164 and set(summary["problems_passed"].values()) == {1}
    rows = read_lines(tmp_path / "results.jsonl")
    assert len(rows) == 164 and {r["status"] for r in rows} == {"passed"}
    assert set(rows[0]) >= {
        "task_id",
        "sample",
        "completion",
        "status",
        "error_type",
        "failing_test",
        "message",
    }
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_prompt_alone_scores_zero(humaneval, tmp_path):
    generate = answering({p.prompt: "" for p in humaneval})
    summary = evaluate(humaneval, generate, tmp_path, settings(), progress=False)
    assert summary["pass_at_k"] == {"pass@1": 0.0}
    assert "passed" not in summary["status_counts"]
    assert sum(summary["status_counts"].values()) == 164


# Each wrong body fails every HumanEval problem the same way, whatever the problem.
WRONG_BODIES = {
    "NameError": "    return undefined_helper(0)\n",
    "KeyError": "    raise KeyError('missing')\n",
    "syntax_error": "    return (\n",
}


def test_a_mix_scores_the_expected_fraction_with_the_expected_error_types(humaneval, tmp_path):
    kinds = ["canonical", *WRONG_BODIES]
    table = {
        p.prompt: p.canonical_solution if kinds[i % 4] == "canonical" else WRONG_BODIES[kinds[i % 4]]
        for i, p in enumerate(humaneval)
    }
    summary = evaluate(humaneval, answering(table), tmp_path, settings(), progress=False)
    assert summary["pass_at_k"]["pass@1"] == pytest.approx(41 / 164)
    assert summary["status_counts"] == {"passed": 41, "error": 82, "syntax_error": 41}
    assert summary["top_error_types"] == {"NameError": 41, "KeyError": 41, "SyntaxError": 41}
    by_task = {r["task_id"]: r for r in read_lines(tmp_path / "results.jsonl")}
    assert by_task["HumanEval/1"]["error_type"] == "NameError"
    assert "undefined_helper" in by_task["HumanEval/1"]["message"]
    assert by_task["HumanEval/4"]["status"] == "passed"


def test_chat_answers_are_extracted_from_their_fence(humaneval, tmp_path):
    from focal_dpo.eval.programs import render_prompt

    problems = humaneval[:12]
    table = {
        render_prompt(
            p, chat=True
        ): f"Here it is:\n```python\n{p.prompt}{p.canonical_solution}```\nHope it helps."
        for p in problems
    }
    summary = evaluate(problems, answering(table), tmp_path, settings(chat=True), progress=False)
    assert summary["pass_at_k"] == {"pass@1": 1.0}


def test_rerun_skips_scored_samples_and_resumes_after_a_crash(humaneval, tmp_path):
    problems = humaneval[:6]
    table = {p.prompt: p.canonical_solution for p in problems}
    calls = {"n": 0}

    def crashes_on_third_batch(prompts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("model server went away")
        return [table[p] for p in prompts]

    with pytest.raises(RuntimeError, match="went away"):
        evaluate(problems, crashes_on_third_batch, tmp_path, settings(batch_size=2), progress=False)
    assert len(read_lines(tmp_path / "results.jsonl")) == 4, "the two finished batches were kept"

    generate = answering(table)
    summary = evaluate(problems, generate, tmp_path, settings(batch_size=2), progress=False)
    assert generate.asked == [p.prompt for p in problems[4:]], "only the missing samples are generated"
    assert summary["pass_at_k"] == {"pass@1": 1.0}
    again = answering(table)
    evaluate(problems, again, tmp_path, settings(batch_size=2), progress=False)
    assert again.asked == [] and len(read_lines(tmp_path / "results.jsonl")) == 6


def test_rerun_with_another_model_into_the_same_out_is_refused(humaneval, tmp_path):
    problems = humaneval[:2]
    table = {p.prompt: p.canonical_solution for p in problems}
    evaluate(problems, answering(table), tmp_path, settings(), progress=False)
    with pytest.raises(RunMismatchError, match="model: 'fake' then, 'other' now"):
        evaluate(problems, answering(table), tmp_path, settings(model="other"), progress=False)


def test_failed_generations_are_left_for_a_rerun(humaneval, tmp_path):
    problems = humaneval[:3]

    def one_fails(prompts):
        return [RuntimeError("HTTP 500") if p == problems[1].prompt else "" for p in prompts]

    with pytest.raises(GenerationIncomplete, match="1 samples got no answer.*HumanEval/1"):
        evaluate(problems, one_fails, tmp_path, settings(), progress=False)
    assert [r["task_id"] for r in read_lines(tmp_path / "results.jsonl")] == ["HumanEval/0", "HumanEval/2"]
    retry = answering({problems[1].prompt: problems[1].canonical_solution})
    summary = evaluate(problems, retry, tmp_path, settings(), progress=False)
    assert summary["problems_passed"] == {"HumanEval/0": 0, "HumanEval/1": 1, "HumanEval/2": 0}


def test_n_samples_per_problem_give_unbiased_pass_at_k(humaneval, tmp_path):
    problems = humaneval[:2]
    answers = iter([problems[0].canonical_solution] * 3 + [""] * 7 + [""] * 10)

    def sampler(prompts):
        return [next(answers) for _ in prompts]

    summary = evaluate(
        problems, sampler, tmp_path, settings(n=10, temperature=0.8, batch_size=20), progress=False
    )
    assert summary["problems_passed"] == {"HumanEval/0": 3, "HumanEval/1": 0}
    assert summary["pass_at_k"] == {"pass@1": pytest.approx(0.15), "pass@10": pytest.approx(0.5)}


BENCH_ROWS = [
    {
        "task_id": "add/script",
        "prompt": "def add(a, b):\n",
        "tests": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "entry_point": "add",
    },
    {
        "task_id": "add/unittest",
        "prompt": "Write add(a, b) returning the sum.",
        "test_style": "unittest",
        "tests": (
            "import unittest\nfrom solution import add\n\n\nclass TestAdd(unittest.TestCase):\n"
            "    def test_small(self):\n        self.assertEqual(add(2, 3), 5)\n"
        ),
    },
    {
        "task_id": "add/stdio",
        "prompt": "Read two integers from one line and print their sum.",
        "test_style": "stdio",
        "tests": [{"stdin": "2 3\n", "stdout": "5\n"}, {"stdin": "10 -4\n", "stdout": "6"}],
    },
]


def test_file_benchmark_scores_script_unittest_and_stdio_styles(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in BENCH_ROWS))
    problems = read_problems_jsonl(path)
    right = {
        "def add(a, b):\n": "    return a + b\n",
        BENCH_ROWS[1]["prompt"]: "```python\ndef add(a, b):\n    return a + b\n```",
        BENCH_ROWS[2]["prompt"]: "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
    }
    wrong = {
        "def add(a, b):\n": "    return a - b\n",
        BENCH_ROWS[1]["prompt"]: "```python\ndef add(a, b):\n    return a * b\n```",
        # right on the first case, wrong on the second: the sample fails
        BENCH_ROWS[2]["prompt"]: "```python\na, b = map(int, input().split())\nprint(a + abs(b))\n```",
    }
    good = evaluate(
        problems, answering(right), tmp_path / "right", settings(benchmark="bench"), progress=False
    )
    assert good["pass_at_k"] == {"pass@1": 1.0}
    bad = evaluate(
        problems, answering(wrong), tmp_path / "wrong", settings(benchmark="bench"), progress=False
    )
    assert bad["problems_passed"] == {"add/script": 0, "add/unittest": 0, "add/stdio": 0}
    assert bad["status_counts"] == {"failed": 3}
    rows = {r["task_id"]: r for r in read_lines(tmp_path / "wrong" / "results.jsonl")}
    assert "test_small" in (rows["add/unittest"]["failing_test"] or "")
