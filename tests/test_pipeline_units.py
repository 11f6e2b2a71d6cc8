"""Pure parts of the CodeFlow pipeline: problem loading, answer parsing, simulate mutations, filters, decontam."""

from __future__ import annotations

import ast
import json
from collections import Counter

import pytest

from codeflow.diff import diff_code
from codeflow.pipeline import decontam, filters, prompts, simulate
from codeflow.pipeline.attempts import ProblemState, attempt_from_answer
from codeflow.pipeline.backends import LLMAnswer, LLMRequest
from codeflow.pipeline.export import FENCE_OPEN, fenced
from codeflow.pipeline.pairing import pick_negative
from codeflow.pipeline.problems import Problem, ProblemFileError, load_problems
from codeflow.pipeline.stats import funnel, pass_rate_by_iteration

# -- problems ---------------------------------------------------------------------------------------------


def _write_lines(tmp_path, lines):
    path = tmp_path / "problems.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_problem_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    good = json.dumps({"id": "a", "instruction": "do a", "tests": "assert True"})
    path = _write_lines(
        tmp_path,
        [
            good,
            "{not json",
            json.dumps({"id": "b"}),
            good,
            json.dumps({"id": "c", "instruction": "x", "test_style": "stdio", "tests": "assert 1"}),
            json.dumps({"id": "d", "instruction": "x", "test_style": "doctest"}),
            json.dumps(
                {
                    "id": "e",
                    "instruction": "x",
                    "test_style": "stdio",
                    "tests": [{"stdin": "1", "stdout": "1"}],
                }
            ),
        ],
    )
    report = load_problems(path)
    assert [p.id for p in report.problems] == ["a", "e"]
    assert report.skipped == 5
    assert f"{path}:2: not valid JSON" in report.errors[0]
    assert "at column 2)" in report.errors[0]
    assert f"{path}:3: missing field 'instruction'" in report.errors[1]
    assert f"{path}:4: duplicate id 'a' (first on line 1)" in report.errors[2]
    assert f"{path}:5:" in report.errors[3] and "stdio" in report.errors[3]
    assert f"{path}:6:" in report.errors[4] and "test_style" in report.errors[4]


def test_a_json_error_at_the_end_of_a_line_names_that_column(tmp_path):
    path = _write_lines(tmp_path, ['{"id": "a", "instruction": "x"'])
    [error] = load_problems(path).errors
    assert error.endswith("not valid JSON (Expecting ',' delimiter at column 31)")


def test_strict_makes_the_first_bad_line_fatal(tmp_path):
    path = _write_lines(tmp_path, [json.dumps({"id": "a", "instruction": "x"}), "[]"])
    with pytest.raises(ProblemFileError, match=r"problems.jsonl:2: expected a JSON object"):
        load_problems(path, strict=True)


def test_shipped_examples_cover_all_test_styles_and_are_valid():
    report = load_problems("examples/problems.jsonl", strict=True)
    assert len(report.problems) >= 20
    styles = Counter(p.test_style for p in report.problems if p.tests)
    assert set(styles) == {"script", "unittest", "stdio"}
    assert any(not p.tests for p in report.problems)
    assert all(p.solution for p in report.problems)


# -- answers and prompts ----------------------------------------------------------------------------------

ANSWER = """Here is my solution.

### solution.py
```python
def f(x):
    return x + 1
```

### test_solution.py
```python
assert f(1) == 2
```
"""


def test_answer_files_are_split_by_their_marker_lines():
    parsed = prompts.parse_answer(ANSWER)
    assert parsed.solution == "def f(x):\n    return x + 1\n"
    assert parsed.tests == "assert f(1) == 2\n"


def test_answer_without_markers_takes_first_block_as_solution_and_an_assert_block_as_tests():
    parsed = prompts.parse_answer(
        "```python\ndef g():\n    return 1\n```\nand\n```python\nassert g() == 1\n```"
    )
    assert parsed.solution.startswith("def g")
    assert parsed.tests == "assert g() == 1\n"
    assert prompts.parse_answer("no code here").solution is None


def test_refinement_that_edits_generated_tests_is_rejected_and_recorded():
    problem = Problem(id="p", instruction="write f")
    generated = {
        "answer_kind": "code",
        "tests": json.dumps("assert f(1) == 2\n"),
        "code": "x",
        "status": "failed",
    }
    state = ProblemState([generated])
    weakened = ANSWER.replace("assert f(1) == 2", "assert True")
    req = LLMRequest("refine", "p", 1, [], request_hash="h")
    row = attempt_from_answer(problem, state, req, LLMAnswer(weakened))
    assert row["answer_kind"] == "tests_edited" and row["status"] == "tests_edited"
    assert json.loads(row["tests"]) == "assert f(1) == 2\n"  # the frozen tests stay
    kept = attempt_from_answer(problem, state, req, LLMAnswer(ANSWER))
    assert kept["answer_kind"] == "code" and kept["status"] is None


def test_truncated_answer_is_a_failed_attempt_that_is_never_executed():
    problem = Problem(id="p", instruction="write f", tests="assert f(1) == 2")
    row = attempt_from_answer(
        problem, ProblemState([]), LLMRequest("generate", "p", 0, []), LLMAnswer(ANSWER, "length")
    )
    assert row["answer_kind"] == "truncated" and row["status"] == "truncated"


def test_refinement_prompt_carries_code_tests_and_trimmed_error():
    problem = Problem(id="p", instruction="Write f.", tests="assert f(1) == 2\n")
    feedback = prompts.feedback_text(
        "code", "failed", "AssertionError", "line 1", "assert f(1) == 2", "Traceback ..."
    )
    text = prompts.refinement_messages(problem, "def f(x):\n    return x\n", problem.tests, feedback)[-1][
        "content"
    ]
    for needle in (
        "Write f.",
        "return x",
        "assert f(1) == 2",
        "Status: failed (AssertionError)",
        "Traceback ...",
    ):
        assert needle in text


# -- simulate ---------------------------------------------------------------------------------------------

SOURCE = '''def window_sums(xs, k):
    """Sums of each window of k items."""
    if k <= 0:
        return []
    out = []
    for i in range(len(xs) - k + 1):
        out.append(sum(xs[i:i + k]))
    return out
'''


def test_mutation_catalogue_covers_each_bug_kind_and_every_mutant_parses():
    found = simulate.find_mutations(SOURCE + "\n\ndef both(a, b):\n    return max(a, b) and a\n")
    kinds = {m.kind for m in found}
    assert kinds == {
        "flipped_comparison",
        "off_by_one",
        "wrong_operator",
        "wrong_variable",
        "dropped_guard",
        "swapped_arguments",
    }
    for m in found:
        mutant = simulate.apply_mutations(SOURCE, [m]) if m.end <= len(SOURCE) else None
        if mutant is not None:
            assert mutant != SOURCE
            ast.parse(mutant)


def test_mutation_plans_are_deterministic_per_seed_and_fix_one_bug_per_step():
    by_seed = {seed: simulate.mutation_plans(SOURCE, seed=seed, problem_id="w") for seed in range(12)}
    assert by_seed[5] == simulate.mutation_plans(SOURCE, seed=5, problem_id="w")
    assert len({repr(p) for p in by_seed.values()}) > 1  # the seed matters
    assert any(p == [[]] for p in by_seed.values())  # some first answers are correct, as with a real model
    bug_plans = [plan for plans in by_seed.values() for plan in plans if plan]
    assert bug_plans
    for plan in bug_plans:
        assert 1 <= len(plan) <= 3
        versions = [simulate.version(SOURCE, plan, fixed) for fixed in range(len(plan) + 1)]
        assert versions[-1] == SOURCE
        assert len(set(versions)) == len(versions)  # each refinement changes the code
        # the rest of the formatting (here the docstring) survives every mutation
        assert all('"""Sums of each window of k items."""' in v for v in versions)


# -- filters and decontamination ----------------------------------------------------------------------------

CHOSEN = "def f(x):\n    if x > 0:\n        return x\n    return -x\n"


def _candidate(rejected: str, chosen: str = CHOSEN) -> filters.Candidate:
    return filters.Candidate("p", fenced(chosen), fenced(rejected), diff_code(rejected, chosen))


CONFIG = filters.FilterConfig(max_diff_lines=3, max_tokens=60)


@pytest.mark.parametrize(
    ("rejected", "reason"),
    [
        (CHOSEN, "identical"),
        ("def f(x):\n    if x>0:\n        return x\n    return -x\n", "whitespace_only"),
        ("def f(x):\n    if x > 0:  # positive\n        return x\n    return -x\n", "comment_only"),
        # a renamed parameter changes how callers pass it by keyword: semantic, and 4 lines changed
        ("def f(y):\n    if y > 0:\n        return y\n    return -y\n", "diff_too_long"),
        ("def f(x):\n    if x > 0\n        return x\n    return -x\n", "unparsable"),
        (
            "def f(x):\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    return a + b + c + d\n",
            "diff_too_long",
        ),
        ("def f(x):\n    if x >= 0:\n        return x\n    return x\n", None),
    ],
)
def test_each_static_filter_drops_what_it_should(rejected, reason):
    assert filters.static_verdict(_candidate(rejected), CONFIG, filters.char_proxy_tokens) == reason


def test_token_limit_applies_to_either_side():
    long_chosen = CHOSEN + "    # " + "padding " * 30 + "\n"
    cand = _candidate("def f(x):\n    return x\n", long_chosen)
    assert filters.check_tokens(cand, CONFIG, filters.char_proxy_tokens) == "too_many_tokens"
    assert (
        filters.check_tokens(cand, filters.FilterConfig(max_tokens=10_000), filters.char_proxy_tokens) is None
    )


def test_decontamination_flags_ngram_overlap_and_exact_substrings_per_benchmark(tmp_path):
    human_eval = decontam.humaneval_benchmark(13)
    leaked = load_humaneval_prompt(0)
    assert decontam.contamination([human_eval], "Please solve: " + leaked) == ("humaneval", "13-gram overlap")
    bench = tmp_path / "mybench.jsonl"
    bench.write_text(
        json.dumps({"question": "Compute the frobnication index of a zigzag lattice quickly."}) + "\n"
    )
    mine = decontam.file_benchmark(bench, n=13)
    text = "Task: Compute   the frobnication index of a zigzag lattice quickly. Thanks"
    assert decontam.contamination([human_eval, mine], text) == ("mybench", "exact substring")
    assert (
        decontam.contamination([human_eval, mine], CHOSEN, "Write a function that reverses a list.") is None
    )


def load_humaneval_prompt(index: int) -> str:
    from codeflow.humaneval import load_humaneval

    return load_humaneval()[index]["prompt"]


def test_decontam_file_errors_name_the_line(tmp_path):
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"prompt": "x"}) + "\n" + json.dumps({"id": 3}) + "\n")
    with pytest.raises(ValueError, match=r"b.jsonl:2: no text field"):
        decontam.file_benchmark(bench)


def test_funnel_counts_add_up():
    verdicts = Counter(
        {
            "kept": 5,
            "comment_only": 2,
            "rename_only": 1,
            "diff_too_long": 3,
            "contaminated": 1,
            "judge_cosmetic": 2,
            "first_try": 4,
        }
    )
    rows = funnel(verdicts)
    assert rows[0]["count"] == 14  # first_try problems are not pair candidates
    for before, after in zip(rows, rows[1:], strict=False):
        assert before["count"] - sum(after["dropped"].values()) == after["count"]
    assert rows[-1]["count"] == verdicts["kept"]


def test_pass_rate_by_iteration_is_cumulative():
    assert pass_rate_by_iteration([0, 1, 1, 3, None], 5, 4) == [0.2, 0.6, 0.6, 0.8, 0.8]


def test_negative_choice_follows_the_strategy_and_is_seeded():
    failing = [{"iteration": i} for i in range(4)]
    assert pick_negative(failing, "first", 0, "p")["iteration"] == 0
    assert pick_negative(failing, "last", 0, "p")["iteration"] == 3
    picks = {pick_negative(failing, "random", s, "p")["iteration"] for s in range(20)}
    assert len(picks) > 1
    assert pick_negative(failing, "random", 7, "p") == pick_negative(failing, "random", 7, "p")


def test_fence_offsets_point_spans_into_the_exported_text():
    rejected, chosen = "def f(x):\n    return x - 1\n", "def f(x):\n    return x + 1\n"
    d = diff_code(rejected, chosen)
    exported = fenced(chosen)
    for s, e in d.after_spans:
        assert exported[s + len(FENCE_OPEN) : e + len(FENCE_OPEN)] == chosen[s:e]


def test_token_limit_counts_with_a_real_tokenizer_when_given(tokenizer_dir):
    count = filters.tokenizer_counter(str(tokenizer_dir))
    cand = _candidate("def f(x):\n    return x\n")
    n = max(count(cand.chosen), count(cand.rejected))
    assert 0 < n != filters.char_proxy_tokens(cand.chosen)
    assert filters.check_tokens(cand, filters.FilterConfig(max_tokens=n), count) is None
    assert filters.check_tokens(cand, filters.FilterConfig(max_tokens=n - 1), count) == "too_many_tokens"
