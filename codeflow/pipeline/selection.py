"""Stages 4-6 of a build: pair -> diff and filter (syntax, size, coverage, judge) -> decontaminate.

Each problem is judged alone (the negative is seeded per problem, every filter looks at one pair), so the
verdicts of any set of problems are the union of theirs: what makes shards merge into one run. The stage is
recomputed from the database on every run; the sandbox runs of `--min-coverage` and the judge's answers are
stored, so a rerun with other filter settings measures and asks nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import time

from codeflow.pipeline import decontam, filters, prompts
from codeflow.pipeline.attempts import ProblemState, load_states
from codeflow.pipeline.backends import LLMRequest
from codeflow.pipeline.calls import ModelCalls
from codeflow.pipeline.config import SelectionSettings
from codeflow.pipeline.db import RunDB
from codeflow.pipeline.execute import SandboxRunner, union_coverage
from codeflow.pipeline.export import fenced
from codeflow.pipeline.pairing import pair_record, pick_negative
from codeflow.pipeline.problems import Problem
from codeflow.pipeline.progress import Progress


class Selection:
    def __init__(
        self,
        db: RunDB,
        problems: list[Problem],
        runner: SandboxRunner,
        calls: ModelCalls,
        settings: SelectionSettings,
        progress: Progress,
        meta: dict,
    ):
        self.db, self.runner, self.calls, self.settings = db, runner, calls, settings
        self.problems = {p.id: p for p in problems}
        self.order = [p.id for p in problems]
        self.position = {pid: i for i, pid in enumerate(self.order)}
        self.progress = progress
        self.meta = meta  # copied into every pair record
        self.diff_s = 0.0
        self._filter_config = filters.FilterConfig(settings.max_diff_lines, settings.max_tokens)
        self._count = (
            filters.tokenizer_counter(settings.tokenizer) if settings.tokenizer else filters.char_proxy_tokens
        )
        self._prepared: dict[str, tuple[int, tuple]] = {}  # problem id -> (attempts seen, its static verdict)

    def prepare(self, pid: str, state: ProblemState) -> None:
        """The static verdict of one finished problem (its negative, its diff, the syntax and size filters),
        computed as soon as it passes so that the diff overlaps with the work still running on the others;
        `run` uses it when the problem's attempts are still the same."""
        self._prepared[pid] = (len(state.attempts), self._static(pid, state))

    def _static(self, pid: str, state: ProblemState) -> tuple[tuple[str, str | None], tuple | None]:
        """(verdict, candidate or None) of a problem that passed, before coverage, judge and decontamination."""
        s = self.settings
        failing = [a for a in state.attempts[:-1] if a["answer_kind"] == "code" and a["status"] != "passed"]
        if not failing:
            return ("first_try" if len(state.attempts) == 1 else "no_failing_code", None), None
        rejected = pick_negative(failing, s.negative, s.seed, pid)
        chosen = state.last
        t0 = time.perf_counter()
        from codeflow.diff import diff_code  # tree-sitter's start-up is the diff engine's cost

        diff = diff_code(rejected["code"], chosen["code"], granularity=s.granularity)
        self.diff_s += time.perf_counter() - t0
        cand = filters.Candidate(pid, fenced(chosen["code"]), fenced(rejected["code"]), diff)
        reason = filters.static_verdict(cand, self._filter_config, self._count)
        return (reason or "kept", diff.kind), ((cand, chosen, rejected) if reason is None else None)

    async def run(self, positions: dict[str, int] | None = None) -> dict[str, tuple[str, str | None]]:
        """Verdicts of every problem that passed, and the pairs they keep, stored together. `positions` orders
        the pairs (the problems' places in the source; default: the order given)."""
        s = self.settings
        states = load_states(self.db)
        benchmarks = ([] if s.no_humaneval else [decontam.humaneval_benchmark(s.ngram)]) + [
            decontam.file_benchmark(p, s.ngram) for p in s.decontam
        ]
        candidates, verdicts, records = [], {}, {}
        bar = self.progress.bar("pair+filter", len(self.order))
        for pid in self.order:
            bar.update()
            state = states.get(pid)
            if state is None or not state.finished:
                continue
            prepared = self._prepared.get(pid)
            verdict, candidate = (
                prepared[1] if prepared and prepared[0] == len(state.attempts) else self._static(pid, state)
            )
            verdicts[pid] = verdict
            if candidate is not None:
                candidates.append(candidate)
            bar.set_postfix(candidates=len(candidates), refresh=False)
        bar.close()
        if s.min_coverage is not None:
            await self._filter_by_coverage(candidates, verdicts, s.min_coverage)
        if s.judge:
            await self._judge(candidates, verdicts)
        for cand, chosen, rejected in candidates:
            if verdicts[cand.problem_id][0] != "kept":
                continue
            problem = self.problems[cand.problem_id]
            hit = decontam.contamination(benchmarks, problem.instruction, chosen["code"])
            if hit:
                verdicts[cand.problem_id] = ("contaminated", f"{hit[0]}: {hit[1]}")
                continue
            records[cand.problem_id] = pair_record(problem, cand, chosen, rejected, self.meta)
        order = positions or self.position
        self.db.replace_selection(
            verdicts, [(pid, order[pid], json.dumps(rec)) for pid, rec in records.items()]
        )
        return verdicts

    # -- line coverage of the chosen versions --------------------------------------------------------------------
    async def _filter_by_coverage(self, candidates: list, verdicts: dict, min_coverage: float) -> None:
        """Drop pairs whose frozen tests run under `min_coverage` of the chosen code's executable lines.

        Each chosen version is run once more with the sandbox's trusted line tracer; its results are stored
        in `coverage_runs`, so a rerun (or another threshold) measures nothing twice. Only the covered lines of
        these runs are used: the verdict that made the version `chosen` came from a run without tracing.
        """
        kept = [(c, ch) for c, ch, _ in candidates if verdicts[c.problem_id][0] == "kept"]
        measured = await self._coverage_results([(self.problems[c.problem_id], ch) for c, ch in kept])
        for cand, _ in kept:
            fraction = union_coverage(measured[cand.problem_id])
            if filters.check_coverage(fraction, min_coverage):
                detail = "not measured" if fraction is None else f"{fraction:.3f} < {min_coverage:g}"
                verdicts[cand.problem_id] = ("low_coverage", detail)

    async def _coverage_results(self, chosen: list[tuple[Problem, dict]]) -> dict[str, list[dict]]:
        """Problem id -> the coverage run's Result dicts of its chosen version, running the missing ones."""
        results = self.db.coverage_results()
        missing = [(p, ch) for p, ch in chosen if (p.id, ch["iteration"]) not in results]
        if missing:
            await self._measure_coverage(missing, results)
        return {p.id: results[(p.id, ch["iteration"])] for p, ch in chosen}

    async def _measure_coverage(self, missing: list[tuple[Problem, dict]], results: dict) -> None:
        # Enough runs in flight to keep every sandbox worker busy, not one queued job per pair of a huge run.
        slots = asyncio.Semaphore(4 * self.runner.executor.parallelism)
        bar = self.progress.bar("coverage", len(missing))
        low = 0

        async def measure(problem: Problem, chosen: dict) -> None:
            nonlocal low
            tests = json.loads(chosen["tests"])
            async with slots:
                outcome = (await self.runner.run([(problem, chosen["code"], tests)], coverage=True))[0]
            cases = [r.to_dict() for r in outcome.results]
            # one transaction per problem, as it finishes: a kill loses only those in flight
            self.db.record_coverage(problem.id, chosen["iteration"], cases)
            results[(problem.id, chosen["iteration"])] = cases
            fraction = union_coverage(cases)
            low += fraction is None or fraction < (self.settings.min_coverage or 0.0)
            bar.set_postfix(below_threshold=low, refresh=False)
            bar.update()

        try:
            await asyncio.gather(*(measure(p, ch) for p, ch in missing))
        finally:
            bar.close()

    # -- the LLM judge ---------------------------------------------------------------------------------------------
    async def _judge(self, candidates: list, verdicts: dict) -> None:
        async def judge(cand: filters.Candidate, chosen: dict, rejected: dict) -> None:
            req = LLMRequest(
                "judge",
                cand.problem_id,
                -1,
                prompts.judge_messages(rejected["code"], chosen["code"]),
                context={"rejected": rejected["code"], "chosen": chosen["code"]},
            )
            answer, call = await self.calls.ask(req)
            self.db.record_call(call)
            functional = prompts.parse_judgement(answer.text) if answer.text is not None else None
            if functional is False:
                verdicts[cand.problem_id] = ("judge_cosmetic", None)
            elif functional is None:
                verdicts[cand.problem_id] = ("judge_unclear", answer.error_kind)

        kept = [k for k in candidates if verdicts[k[0].problem_id][0] == "kept"]
        await asyncio.gather(*(judge(*k) for k in kept))
