"""sandbox.suite: a problem's tests -> sandbox jobs -> one outcome, with one crash-retry policy for every caller."""

from __future__ import annotations

import pytest

from sandbox import Result
from sandbox.suite import CRASH_RETRIES, StdioCase, TestSuite, run_suites
from tests.sandbox_cases.helpers import quiet_sandbox


class ScriptedSandbox:
    """Answers run_many from a list of statuses per job, in the order jobs arrive; records every batch."""

    def __init__(self, statuses: list[str]):
        self.statuses = list(statuses)
        self.batches: list[list] = []

    def run_many(self, jobs, progress=False):
        self.batches.append(list(jobs))
        return [Result(status=self.statuses.pop(0), failing_test=f"t{len(self.batches)}") for _ in jobs]


def test_a_script_suite_is_one_job_and_a_stdio_suite_one_job_per_case():
    script = TestSuite.from_tests("script", "assert f() == 1\n")
    stdio = TestSuite.from_tests("stdio", [{"stdin": "1\n", "stdout": "2\n"}, {"stdout": "0\n"}])
    assert stdio.cases == (StdioCase("1\n", "2\n"), StdioCase("", "0\n"))
    [job] = script.jobs("def f():\n    return 1\n")
    assert (job.style, job.tests) == ("script", "assert f() == 1\n")
    jobs = stdio.jobs("print(1)", coverage=True)
    assert [(j.style, j.stdin, j.expected_stdout, j.coverage) for j in jobs] == [
        ("stdio", "1\n", "2\n", True),
        ("stdio", "", "0\n", True),
    ]
    assert stdio.stored() == [{"stdin": "1\n", "stdout": "2\n"}, {"stdin": "", "stdout": "0\n"}]


@pytest.mark.parametrize(
    "style, tests, message",
    [
        ("doctest", "x", "unknown test style"),
        ("script", "   ", "non-empty string"),
        ("script", [{"stdout": "1"}], "must be a string"),
        ("stdio", "print(1)", "list of {stdin, stdout}"),
        ("stdio", [], "non-empty list"),
        ("stdio", [{"stdin": "1"}], "case 0 needs a string 'stdout'"),
        ("stdio", [{"stdout": "1", "stdin": 3}], "'stdin' must be a string"),
    ],
)
def test_bad_tests_are_refused_with_the_reason(style, tests, message):
    with pytest.raises(ValueError, match=message):
        TestSuite.from_tests(style, tests)


def test_the_first_job_that_does_not_pass_speaks_for_the_suite():
    stdio = TestSuite.from_tests("stdio", [{"stdout": "1"}, {"stdout": "2"}, {"stdout": "3"}])
    sandbox = ScriptedSandbox(["passed", "failed", "timeout"])
    [outcome] = run_suites(sandbox, [(stdio, "print(1)")])
    assert (outcome.status, outcome.failing_test, outcome.passed) == ("failed", "stdio case 2 of 3", False)
    assert [r.status for r in outcome.results] == ["passed", "failed", "timeout"]
    [passed] = run_suites(ScriptedSandbox(["passed"]), [(TestSuite("script", tests="assert 1"), "x = 1")])
    assert passed.passed and passed.failing_test is None


def test_all_checks_go_to_the_sandbox_as_one_batch_in_order():
    a = TestSuite("script", tests="assert 1")
    b = TestSuite.from_tests("stdio", [{"stdout": "1"}, {"stdout": "2"}])
    sandbox = ScriptedSandbox(["failed", "passed", "passed", "passed"])
    outcomes = run_suites(sandbox, [(a, "x"), (b, "y"), (a, "z")])
    assert [len(batch) for batch in sandbox.batches] == [4]
    assert [job.code for job in sandbox.batches[0]] == ["x", "y", "y", "z"]
    assert [o.status for o in outcomes] == ["failed", "passed", "passed"]


def test_a_crashed_job_is_run_once_more_and_its_second_result_counts():
    suite = TestSuite.from_tests("stdio", [{"stdout": "1"}, {"stdout": "2"}])
    sandbox = ScriptedSandbox(["crashed", "passed", "passed"])
    [outcome] = run_suites(sandbox, [(suite, "print(1)")])
    assert outcome.passed and outcome.reruns == 1
    assert [len(batch) for batch in sandbox.batches] == [2, 1]  # only the crashed job again


def test_a_crash_that_repeats_is_the_verdict():
    sandbox = ScriptedSandbox(["crashed"] * (1 + CRASH_RETRIES))
    [outcome] = run_suites(sandbox, [(TestSuite("script", tests="assert 1"), "import os")])
    assert outcome.status == "crashed" and outcome.reruns == CRASH_RETRIES
    assert len(sandbox.batches) == 1 + CRASH_RETRIES


def test_real_sandbox_runs_every_style_it_knows():
    from sandbox.suite import STYLES

    checks = [
        (TestSuite("script", tests="assert f() == 2\n"), "def f():\n    return 2\n"),
        (TestSuite("stdio", cases=(StdioCase("3\n", "4\n"),)), "print(int(input()) + 1)\n"),
        (
            TestSuite(
                "unittest",
                tests="import unittest\nfrom solution import f\n\n\nclass T(unittest.TestCase):\n"
                "    def test_f(self):\n        self.assertEqual(f(), 3)\n",
            ),
            "def f():\n    return 2\n",
        ),
    ]
    if "pytest" in STYLES:
        checks.append(
            (
                TestSuite("pytest", tests="from solution import f\n\n\ndef test_f():\n    assert f() == 2\n"),
                "def f():\n    return 2\n",
            )
        )
    with quiet_sandbox() as sandbox:
        outcomes = run_suites(sandbox, checks)
    assert [o.status for o in outcomes] == [
        "passed",
        "passed",
        "failed",
        *(["passed"] if len(checks) > 3 else []),
    ]
    assert outcomes[2].failing_test and "test_f" in outcomes[2].failing_test
