"""Stages 1-3 of a build: generate -> execute -> refine, every problem on its own, all at once.

Every problem runs its own ask -> test -> ask sequence on the build's event loop, so a slow answer or a test run
that times out holds up only its own problem. An answer and the attempt it makes are committed together as soon
as the answer arrives, and each attempt's sandbox verdict as soon as it is known; a rerun reads the attempts back
and asks only for what is missing. A problem's state lives in attempts.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from codeflow.pipeline.attempts import ProblemState, attempt_from_answer, load_states, next_request
from codeflow.pipeline.calls import ModelCalls
from codeflow.pipeline.db import RunDB
from codeflow.pipeline.execute import SandboxRunner
from codeflow.pipeline.problems import Problem
from codeflow.pipeline.progress import Progress, ordered_counts


@dataclass
class CallFailure:
    kind: str
    message: str
    requests: int


class Generation:
    def __init__(
        self,
        db: RunDB,
        problems: list[Problem],
        runner: SandboxRunner,
        calls: ModelCalls,
        *,
        max_iterations: int,
        skip_reason,
        progress: Progress,
        concurrency: int,
        on_passed=None,
    ):
        self.db, self.runner, self.calls = db, runner, calls
        self.problems = {p.id: p for p in problems}
        self.order = [p.id for p in problems]
        self.max_iterations = max_iterations
        self.skip_reason = skip_reason  # problem -> why it cannot be built (None: it can)
        self.progress = progress
        self.concurrency = concurrency
        # called with (problem id, state) when a problem passes, so that later work on it (its pair's diff)
        # can overlap with the other problems' model calls and sandbox jobs
        self.on_passed = on_passed
        self.failures: dict[str, CallFailure] = {}  # problem id -> its last call that failed (this run)
        self.counts: Counter = Counter()  # how attempts ended, for the progress line

    def finished(self) -> tuple[int, int]:
        """(problems already finished in the database, problems to build): what a resumed build says first."""
        states = load_states(self.db)
        active = [pid for pid in self.order if self.skip_reason(self.problems[pid]) is None]
        done = sum(1 for pid in active if pid in states and self._done(states[pid]))
        return done, len(active)

    async def run(self) -> None:
        """Every problem runs its own loop (ask, run the tests, ask again ...), all at once. The backend bounds
        the requests in flight, the sandbox its jobs."""
        states = load_states(self.db)
        active = [pid for pid in self.order if self.skip_reason(self.problems[pid]) is None]
        bar = self.progress.bar("generate+refine", len(active))
        # Problems in progress at once: enough to keep the backend and the sandbox full, few enough that a
        # run of a million problems does not hold a million prompts, and that a kill loses little.
        slots = asyncio.Semaphore(max(64, 4 * (self.concurrency + self.runner.executor.parallelism)))

        async def solve(pid: str) -> None:
            async with slots:
                await self._solve(pid, states.get(pid) or ProblemState([]), bar)

        try:
            await asyncio.gather(*(solve(pid) for pid in active))
        finally:
            bar.close()

    async def _solve(self, pid: str, state: ProblemState, bar) -> None:
        problem = self.problems[pid]
        while not state.finished:
            if state.unexecuted:
                await self._execute(problem, state)
                continue
            if state.next_iteration > self.max_iterations:
                break
            req = next_request(problem, state)
            answer, call = await self.calls.ask(req)
            if answer.text is None:
                self.failures[pid] = CallFailure(
                    answer.error_kind or "", answer.error_message or "", answer.requests
                )
                self.db.record_call(call)
                self.counts["llm_error"] += 1
                break
            self.failures.pop(pid, None)
            row = attempt_from_answer(problem, state, req, answer)
            self.db.record_call(call, row)
            state.attempts.append(row)
            if row["answer_kind"] != "code":  # a failed attempt that never reaches the sandbox
                self.counts[row["answer_kind"]] += 1
            bar.set_postfix(ordered_counts(self.counts), refresh=False)
        bar.set_postfix(ordered_counts(self.counts), refresh=False)
        bar.update()  # this problem is done: passed, out of iterations, or its request failed
        if state.finished and self.on_passed is not None:
            self.on_passed(pid, state)

    async def _execute(self, problem: Problem, state: ProblemState) -> None:
        last = state.last
        outcome = (await self.runner.run([(problem, last["code"], state.frozen_tests)]))[0]
        verdict = {
            "status": outcome.status,
            "error_type": outcome.error_type,
            "message": outcome.message,
            "failing_test": outcome.failing_test,
            "traceback": outcome.traceback,
        }
        self.db.record_execution(
            problem.id, last["iteration"], verdict, [r.to_dict() for r in outcome.results]
        )
        last.update(verdict)
        self.counts["passed" if outcome.passed else "failed"] += 1

    def _done(self, state: ProblemState) -> bool:
        return state.finished or self._exhausted(state)

    def _exhausted(self, state: ProblemState) -> bool:
        last = state.last
        return (
            last is not None
            and last["status"] not in (None, "passed")
            and state.next_iteration > self.max_iterations
        )

    def record_outcomes(self) -> dict[str, tuple[str, str | None, int | None]]:
        """How every problem ended (passed, exhausted, llm_error, skipped, unfinished), stored for `stats`."""
        states = load_states(self.db)
        outcomes = {}
        for pid in self.order:
            reason = self.skip_reason(self.problems[pid])
            s = states.get(pid)
            if reason:
                outcomes[pid] = ("skipped", reason, None)
            elif s and s.finished:
                outcomes[pid] = ("passed", f"passed at iteration {s.last['iteration']}", s.last["iteration"])
            elif pid in self.failures:
                f = self.failures[pid]
                why = f"{f.kind} after {f.requests} requests: {f.message}"
                outcomes[pid] = ("llm_error", why, s.last["iteration"] if s else None)
            elif s and self._exhausted(s):
                outcomes[pid] = (
                    "exhausted",
                    f"still {s.last['status']} after {len(s.attempts)} attempts",
                    s.last["iteration"],
                )
            else:
                outcomes[pid] = ("unfinished", "interrupted; rerun the same command to resume", None)
        self.db.replace_outcomes(outcomes)
        return outcomes
