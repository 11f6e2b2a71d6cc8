"""Real-world check: HumanEval's 164 canonical solutions all pass; the prompts alone (no body) all fail."""

from __future__ import annotations

import warnings

import pytest

from codeflow.humaneval import load_humaneval
from sandbox import Job, Limits, Sandbox


def _tests(problem: dict) -> str:
    return problem["test"] + f"\ncheck({problem['entry_point']})\n"


@pytest.fixture(scope="module")
def results():
    problems = load_humaneval()
    canonical = [Job(p["prompt"] + p["canonical_solution"], _tests(p)) for p in problems]
    prompt_only = [Job(p["prompt"], _tests(p)) for p in problems]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Sandbox(workers=2, limits=Limits(timeout_s=20)) as sb:
            yield problems, sb.run_many(canonical), sb.run_many(prompt_only)


@pytest.mark.slow
def test_every_canonical_solution_passes(results):
    problems, canonical, _ = results
    assert len(problems) == 164
    failures = {
        p["task_id"]: (r.status, r.message) for p, r in zip(problems, canonical, strict=True) if not r.passed
    }
    assert failures == {}
    assert all(r.tests_run >= 1 for r in canonical)


@pytest.mark.slow
def test_no_prompt_without_a_body_passes(results):
    problems, _, prompt_only = results
    passed = [p["task_id"] for p, r in zip(problems, prompt_only, strict=True) if r.passed]
    assert passed == []
    assert {r.status for r in prompt_only} <= {"failed", "error"}
