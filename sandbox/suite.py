"""A problem's test suite: its test style and tests, the sandbox jobs that check one program against them, and
the one outcome those jobs fold into.

The one definition used by both `codeflow build` and `focal-dpo eval`, built only on the sandbox's public API
(`Job`, `Result`, `Sandbox.run_many`):

    suite = TestSuite.from_tests("stdio", [{"stdin": "1\\n", "stdout": "2\\n"}])
    [outcome] = run_suites(sandbox, [(suite, "print(int(input()) + 1)")])
    outcome.passed, outcome.status, outcome.failing_test

A script/unittest/pytest suite is one job; a stdio suite is one job per case. A job that comes back `crashed`
(killed from outside: another sandbox's clean-up, the OOM killer) is run `CRASH_RETRIES` more time(s): a real
crash repeats, and a kill that came from the machine should not decide a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.types import STYLES, Job, Limits, Result

# Extra runs for a job whose result is `crashed`, for every caller alike.
CRASH_RETRIES = 1


@dataclass(frozen=True)
class StdioCase:
    stdin: str
    stdout: str

    def to_dict(self) -> dict[str, str]:
        return {"stdin": self.stdin, "stdout": self.stdout}


@dataclass(frozen=True)
class TestSuite:
    """How a program is checked: `style` and either `tests` (test code) or `cases` (stdio)."""

    __test__ = False  # not a pytest test class, despite the name

    style: str
    tests: str | None = None
    cases: tuple[StdioCase, ...] = ()

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown test style {self.style!r}: use one of {', '.join(STYLES)}")
        if self.style == "stdio":
            if not self.cases:
                raise ValueError("stdio tests must be a non-empty list of {stdin, stdout} cases")
        elif not isinstance(self.tests, str) or not self.tests.strip():
            raise ValueError(f"{self.style} tests must be a non-empty string of test code")

    @classmethod
    def from_tests(cls, style: str, tests: str | Sequence[Any]) -> TestSuite:
        """From a problem's stored form: test code, or for stdio a list of {"stdin", "stdout"} dicts (or
        StdioCase). Raises ValueError naming what is wrong (the caller adds where: file, line, row)."""
        if style != "stdio":
            if not isinstance(tests, str):
                raise ValueError(f"{style} tests must be a string of test code, got {type(tests).__name__}")
            return cls(style, tests=tests)
        if isinstance(tests, (str, bytes)) or not isinstance(tests, Sequence):
            raise ValueError("stdio tests must be a list of {stdin, stdout} cases")
        return cls("stdio", cases=tuple(_case(i, c) for i, c in enumerate(tests)))

    def stored(self) -> str | list[dict[str, str]]:
        """The form `from_tests` reads back: test code, or the list of case dicts (JSON-serialisable)."""
        return [c.to_dict() for c in self.cases] if self.style == "stdio" else self.tests  # type: ignore[return-value]

    def jobs(self, code: str, *, limits: Limits | None = None, coverage: bool = False) -> list[Job]:
        """The sandbox jobs that check `code`: one, or one per stdio case."""
        if self.style == "stdio":
            return [
                Job(code, None, "stdio", c.stdin, c.stdout, limits=limits, coverage=coverage)
                for c in self.cases
            ]
        return [Job(code, self.tests, self.style, limits=limits, coverage=coverage)]

    def fold(self, results: Sequence[Result]) -> SuiteOutcome:
        """One outcome from this suite's job results: the first job that did not pass speaks for them all."""
        for index, r in enumerate(results):
            if r.status != "passed":
                failing = r.failing_test
                if self.style == "stdio":
                    failing = f"stdio case {index + 1} of {len(results)}"
                return SuiteOutcome(r.status, r.error_type, r.message, failing, r.traceback, list(results))
        return SuiteOutcome("passed", results=list(results))


def _case(index: int, case: Any) -> StdioCase:
    if isinstance(case, StdioCase):
        return case
    if not isinstance(case, dict) or not isinstance(case.get("stdout"), str):
        raise ValueError(f"stdio case {index} needs a string 'stdout' (and an optional string 'stdin')")
    stdin = case.get("stdin", "")
    if stdin is None:
        stdin = ""
    if not isinstance(stdin, str):
        raise ValueError(f"stdio case {index}: 'stdin' must be a string")
    return StdioCase(stdin, case["stdout"])


@dataclass
class SuiteOutcome:
    """A program's verdict on a suite; `results` holds one sandbox Result per job, in job order."""

    status: str  # the sandbox status; "passed" only if every job passed
    error_type: str | None = None
    message: str | None = None
    failing_test: str | None = None
    traceback: str | None = None
    results: list[Result] = field(default_factory=list)
    reruns: int = 0  # crashed jobs of this check that were run again

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def run_suites(
    sandbox: Any,
    checks: Iterable[tuple[TestSuite, str]],
    *,
    limits: Limits | None = None,
    coverage: bool = False,
    crash_retries: int = CRASH_RETRIES,
) -> list[SuiteOutcome]:
    """Outcomes for (suite, code) pairs, in order. All jobs go to `sandbox.run_many` as one batch, so every
    worker stays busy; crashed jobs are sent again (up to `crash_retries` times) before folding."""
    checks = list(checks)
    per_check = [suite.jobs(code, limits=limits, coverage=coverage) for suite, code in checks]
    flat = [job for jobs in per_check for job in jobs]
    results = list(sandbox.run_many(flat)) if flat else []
    reruns = [0] * len(flat)
    for _ in range(crash_retries):
        again = [i for i, r in enumerate(results) if r.status == "crashed"]
        if not again:
            break
        for i, r in zip(again, sandbox.run_many([flat[i] for i in again]), strict=True):
            results[i] = r
            reruns[i] += 1
    outcomes, at = [], 0
    for (suite, _), jobs in zip(checks, per_check, strict=True):
        outcome = suite.fold(results[at : at + len(jobs)])
        outcome.reruns = sum(reruns[at : at + len(jobs)])
        outcomes.append(outcome)
        at += len(jobs)
    return outcomes


def count_jobs(checks: Iterable[tuple[TestSuite, str]]) -> int:
    """How many sandbox jobs `run_suites` sends for these checks on their first pass."""
    return sum(1 if suite.style != "stdio" else len(suite.cases) for suite, _ in checks)
