"""Run attempts in the sandbox: each attempt's code against its problem's test suite (`sandbox.suite`)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from codeflow.pipeline.clock import BusyClock
from codeflow.pipeline.problems import TEST_STYLES, Problem
from sandbox.suite import SuiteOutcome, TestSuite, run_suites

# (problem, code, tests): tests are the problem's own or the frozen ones the model wrote.
Attempt = tuple[Problem, str, "str | list[dict]"]


class SandboxCheckError(RuntimeError):
    """The sandbox got its own probe jobs wrong; building on it would fail (or pass) every attempt."""


def union_coverage(results: list[dict]) -> float | None:
    """Share of the code's executable lines run by any of its jobs (stdio: the union over the cases).

    None when nothing was measured: no job sent a report, or the code has no executable line.
    """
    executable = set(next((r["executable_lines"] for r in results if r.get("executable_lines")), []))
    reported = [r["covered_lines"] for r in results if r.get("covered_lines") is not None]
    if not executable or not reported:
        return None
    return len(executable & set().union(*reported)) / len(executable)


# A passing and a failing probe per test style, run before any LLM money is spent.
_UNITTEST = (
    "import unittest\nfrom solution import f\n\n\nclass T(unittest.TestCase):\n"
    "    def test_f(self):\n        self.assertEqual(f(), {})\n"
)
_PYTEST = "from solution import f\n\n\ndef test_f():\n    assert f() == {}\n"
_RETURNS_ONE = "def f():\n    return 1\n"
_ADD_ONE = "print(int(input()) + 1)\n"
PROBES = {  # style -> [(code, tests, should pass)]
    "script": [(_RETURNS_ONE, "assert f() == 1\n", True), (_RETURNS_ONE, "assert f() == 2\n", False)],
    "unittest": [(_RETURNS_ONE, _UNITTEST.format(1), True), (_RETURNS_ONE, _UNITTEST.format(2), False)],
    "pytest": [(_RETURNS_ONE, _PYTEST.format(1), True), (_RETURNS_ONE, _PYTEST.format(2), False)],
    "stdio": [
        (_ADD_ONE, [{"stdin": "1\n", "stdout": "2\n"}], True),
        (_ADD_ONE, [{"stdin": "1\n", "stdout": "3\n"}], False),
    ],
}


class Executor:
    """Runs batches of attempts on one `sandbox.Sandbox` (the real one by default)."""

    def __init__(
        self, workers: int | None = None, timeout_s: float = 10.0, memory_mb: int = 1024, sandbox=None
    ):
        t0 = time.perf_counter()
        if sandbox is None:
            from sandbox import Limits, Sandbox

            sandbox = Sandbox(workers=workers, limits=Limits(timeout_s=timeout_s, memory_mb=memory_mb))
            self._owned = True
        else:
            self._owned = False
        self.sandbox = sandbox
        self.workers = workers or os.cpu_count() or 1
        self._lock = threading.Lock()  # run() is called from several threads at once
        self.executions = 0
        self.retried = 0  # crashed jobs run a second time
        self.startup_s = time.perf_counter() - t0

    @property
    def parallelism(self) -> int:
        """How many jobs the sandbox runs at once (its worker count)."""
        return self.workers

    def close(self) -> None:
        if self._owned:
            self.sandbox.close()

    def run(self, attempts: list[Attempt], coverage: bool = False) -> list[SuiteOutcome]:
        """Outcomes for (problem, code, tests) triples, in input order; all jobs go to the sandbox as one batch.
        With `coverage`, each job also reports the lines of the code it ran (`results[i].covered_lines`)."""
        checks = [(problem.suite(tests), code) for problem, code, tests in attempts]
        outcomes = run_suites(self.sandbox, checks, coverage=coverage)
        jobs = sum(len(o.results) for o in outcomes)
        reruns = sum(o.reruns for o in outcomes)
        with self._lock:
            self.executions += jobs + reruns
            self.retried += reruns
        return outcomes

    def self_check(self, styles: tuple[str, ...] | None = None) -> None:
        """Run a passing and a failing job of each test style (those the problems use, and script) before any
        LLM money is spent: a sandbox that cannot run code (a missing isolation feature, a broken install)
        would otherwise fail every attempt."""
        wanted = [s for s in PROBES if s in TEST_STYLES and (styles is None or s in styles or s == "script")]
        probes = [(style, code, tests, ok) for style in wanted for code, tests, ok in PROBES[style]]
        attempts = [(Problem(id="self-check", instruction="", test_style=st), c, t) for st, c, t, _ in probes]
        for (style, _, _, should_pass), outcome in zip(probes, self.run(attempts), strict=True):
            if outcome.passed != should_pass:
                detail = f" ({outcome.error_type}: {outcome.message})" if outcome.error_type else ""
                raise SandboxCheckError(
                    f"sandbox self-check failed: a {style} job that should {'pass' if should_pass else 'fail'} "
                    f"came back {outcome.status}{detail}; fix the sandbox first (`python -m sandbox check`)"
                )


class SandboxRunner:
    """The executor seen from the event loop: `await run(...)` runs attempts on a thread pool as wide as the
    sandbox, so many problems' tests run at once while the loop goes on; the busy time is clocked."""

    def __init__(self, executor: Executor, engines: BusyClock):
        self.executor = executor
        self.clock = BusyClock()  # wall time with at least one sandbox job in flight
        self.clock.seconds = executor.startup_s
        self.engines = engines  # shared with the model backend: time when either is working
        # wider than the sandbox, so a job is always waiting when a worker frees up (they queue in the sandbox)
        self.pool = ThreadPoolExecutor(max_workers=4 * executor.parallelism, thread_name_prefix="sandbox")

    async def run(self, attempts: list[Attempt], coverage: bool = False) -> list[SuiteOutcome]:
        with self.clock.busy(), self.engines.busy():
            return await asyncio.get_running_loop().run_in_executor(
                self.pool, self.executor.run, attempts, coverage
            )

    async def fails(self, candidates: list[tuple[Problem, str]]) -> list[bool]:
        """For the simulate backend: does each candidate code fail the problem's tests?"""
        outcomes = await self.run([(p, code, p.tests) for p, code in candidates])
        return [not o.passed for o in outcomes]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


__all__ = ["Executor", "SandboxCheckError", "SandboxRunner", "SuiteOutcome", "TestSuite", "union_coverage"]
