"""Run attempts in the sandbox: one job per attempt, or one per case for stdio problems, results folded back."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from codeflow.pipeline.clock import BusyClock
from codeflow.pipeline.problems import Problem


class SandboxCheckError(RuntimeError):
    """The sandbox got its own probe jobs wrong; building on it would fail (or pass) every attempt."""


@dataclass
class ExecOutcome:
    status: str  # the sandbox's status; "passed" only if every case passed
    error_type: str | None = None
    message: str | None = None
    failing_test: str | None = None
    traceback: str | None = None
    cases: list[dict] = field(default_factory=list)  # Result.to_dict() per sandbox job

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def jobs_for(problem: Problem, code: str, tests: str | list[dict], coverage: bool = False) -> list[dict]:
    """Keyword arguments of the sandbox jobs that check `code` against `tests` (with line coverage if asked)."""
    extra = {"coverage": True} if coverage else {}
    if problem.test_style == "stdio":
        return [
            {
                "code": code,
                "tests": None,
                "style": "stdio",
                "stdin": case.get("stdin", ""),
                "expected_stdout": case["stdout"],
                **extra,
            }
            for case in tests
        ]
    return [{"code": code, "tests": tests, "style": problem.test_style, **extra}]


def union_coverage(results: list[dict]) -> float | None:
    """Share of the code's executable lines run by any of its jobs (stdio: the union over the cases).

    None when nothing was measured: no job sent a report, or the code has no executable line.
    """
    executable = set(next((r["executable_lines"] for r in results if r.get("executable_lines")), []))
    reported = [r["covered_lines"] for r in results if r.get("covered_lines") is not None]
    if not executable or not reported:
        return None
    return len(executable & set().union(*reported)) / len(executable)


def fold(problem: Problem, results: list[dict]) -> ExecOutcome:
    """One outcome from the results of an attempt's jobs: the first failing case speaks for the attempt."""
    for index, r in enumerate(results):
        if r.get("status") != "passed":
            failing = r.get("failing_test")
            if problem.test_style == "stdio":
                failing = f"stdio case {index + 1} of {len(results)}"
            return ExecOutcome(
                r.get("status") or "error",
                r.get("error_type"),
                r.get("message"),
                failing,
                r.get("traceback"),
                results,
            )
    return ExecOutcome("passed", cases=results)


class Executor:
    """Runs batches of attempts on one `sandbox.Sandbox` (the real one by default)."""

    def __init__(
        self, workers: int | None = None, timeout_s: float = 10.0, memory_mb: int = 1024, sandbox=None
    ):
        t0 = time.perf_counter()
        if sandbox is None:
            from sandbox import Limits, Sandbox

            sandbox = Sandbox(workers=workers, limits=Limits(timeout_s=timeout_s, memory_mb=memory_mb))
            sandbox.__enter__()
            self._owned = True
        else:
            self._owned = False
        self.sandbox = sandbox
        self._lock = threading.Lock()  # run() is called from several threads at once
        self.executions = 0
        self.retried = 0  # crashed jobs run a second time
        self.startup_s = time.perf_counter() - t0

    @property
    def parallelism(self) -> int:
        """How many jobs the sandbox runs at once (its worker count)."""
        uids = getattr(self.sandbox, "uids", None)
        return len(uids) if uids else (os.cpu_count() or 1)

    def close(self) -> None:
        if self._owned:
            self.sandbox.__exit__(None, None, None)

    def run(
        self, attempts: list[tuple[Problem, str, str | list[dict]]], coverage: bool = False
    ) -> list[ExecOutcome]:
        """Outcomes for (problem, code, tests) triples, in input order; all jobs go to the sandbox as one batch.
        With `coverage`, each job also reports the lines of the code it ran (`cases[i]["covered_lines"]`)."""
        from sandbox import Job

        kwargs = [jobs_for(p, code, tests, coverage) for p, code, tests in attempts]
        flat = [Job(**k) for ks in kwargs for k in ks]
        results = [r.to_dict() for r in self._run_jobs(flat)]
        # A job killed from outside (status crashed) is run once more: a real crash repeats, while a kill
        # that came from the machine (another sandbox's clean-up, the OOM killer) should not decide a verdict.
        again = [i for i, r in enumerate(results) if r.get("status") == "crashed"]
        if again:
            for i, r in zip(again, self._run_jobs([flat[i] for i in again]), strict=True):
                results[i] = r.to_dict()
            with self._lock:
                self.retried += len(again)
        with self._lock:
            self.executions += len(flat)
        outcomes, at = [], 0
        for (problem, _, _), ks in zip(attempts, kwargs, strict=True):
            outcomes.append(fold(problem, results[at : at + len(ks)]))
            at += len(ks)
        return outcomes

    def _run_jobs(self, jobs: list) -> list:
        if len(jobs) == 1 and hasattr(self.sandbox, "run_job"):  # no thread pool for one job
            try:
                return [self.sandbox.run_job(jobs[0])]
            except Exception as exc:  # noqa: BLE001 - as run_many does: a result, not a crashed build
                from sandbox import Result

                return [
                    Result(status="error", error_type="SandboxError", message=f"{type(exc).__name__}: {exc}")
                ]
        return self.sandbox.run_many(jobs) if jobs else []

    def self_check(self) -> None:
        """Run a passing and a failing job of each test style before any LLM money is spent: a sandbox that
        cannot run code (a missing isolation feature, a broken install) would otherwise fail every attempt."""
        unittest_module = (
            "import unittest\nfrom solution import f\n\n\nclass T(unittest.TestCase):\n"
            "    def test_f(self):\n        self.assertEqual(f(), {})\n"
        )
        add_one = "print(int(input()) + 1)\n"
        probes = [  # (style, code, tests, should pass)
            ("script", "def f():\n    return 1\n", "assert f() == 1\n", True),
            ("script", "def f():\n    return 1\n", "assert f() == 2\n", False),
            ("unittest", "def f():\n    return 1\n", unittest_module.format(1), True),
            ("unittest", "def f():\n    return 1\n", unittest_module.format(2), False),
            ("stdio", add_one, [{"stdin": "1\n", "stdout": "2\n"}], True),
            ("stdio", add_one, [{"stdin": "1\n", "stdout": "3\n"}], False),
        ]
        triples = [
            (Problem(id="self-check", instruction="", test_style=st), code, t) for st, code, t, _ in probes
        ]
        for (style, _, _, should_pass), outcome in zip(probes, self.run(triples), strict=True):
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

    async def run(
        self, attempts: list[tuple[Problem, str, str | list[dict]]], coverage: bool = False
    ) -> list[ExecOutcome]:
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
