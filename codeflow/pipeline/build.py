"""`codeflow build`: generate -> execute -> refine (loop) -> pair -> diff/filter -> decontaminate -> export.

In the generation loop every problem runs its own ask -> test -> ask sequence, all problems at once on one
event loop, so a slow answer or a test run that times out holds up only its own problem. Everything a stage
produces is committed to the run's database as it arrives; what a rerun finds there it does not redo, and no
request whose answer is stored is sent again. The later stages are cheap and pure, so they are recomputed from
the database on every run. A problem's state lives in attempts.py, the choice of pairs in pairing.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codeflow.pipeline import decontam, filters, prompts
from codeflow.pipeline.attempts import (
    ProblemState,
    attempt_from_answer,
    insert_attempt,
    insert_call,
    load_states,
    next_request,
)
from codeflow.pipeline.backends import LLMAnswer, LLMRequest, request_hash
from codeflow.pipeline.clock import BusyClock
from codeflow.pipeline.db import RunDB, open_run_db
from codeflow.pipeline.execute import Executor, SandboxRunner, union_coverage
from codeflow.pipeline.export import fenced, write_pairs
from codeflow.pipeline.pairing import pair_record, pick_negative
from codeflow.pipeline.problems import Problem, load_problems

# Settings that decide the model's answers: a run directory cannot be resumed with different ones.
GENERATION_KEYS = ("llm", "model", "seed", "temperature", "max_new_tokens")
TIMING_COMMITS = 6  # backend, sandbox, idle_engines, diff, database, wall
REQUEST_LOG_ENV = "CODEFLOW_REQUEST_LOG"  # append each request hash before it is sent (audit, tests)


@dataclass
class BuildConfig:
    problems: str
    out: str
    llm: str = "simulate"
    model: str = ""
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    request_timeout_s: float = 120.0
    max_retries: int = 6
    rpm: float | None = None
    temperature: float = 0.2
    max_new_tokens: int = 2048
    max_iterations: int = 5
    negative: str = "random"
    seed: int = 0
    granularity: str = "statement"
    max_diff_lines: int = 20
    max_tokens: int = 2048
    tokenizer: str | None = None
    judge: bool = False
    min_coverage: float | None = None  # keep pairs whose tests run at least this share of the chosen lines
    decontam: list[str] = field(default_factory=list)
    ngram: int = 13
    no_humaneval: bool = False
    strict: bool = False
    workers: int | None = None
    exec_timeout_s: float = 10.0
    memory_mb: int = 1024
    progress: bool = True


class BuildError(RuntimeError):
    """A build that cannot start or continue; the message says what to change."""


class Progress:
    """A tqdm bar per stage on stderr, with live counts; silent when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def bar(self, desc: str, total: int):
        if not self.enabled:
            return _NullBar()
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="problem", file=sys.stderr, dynamic_ncols=True, leave=True)


ATTEMPT_ENDINGS = ("passed", "failed", "truncated", "no_code", "no_tests", "tests_edited", "llm_error")


def ordered_counts(counts: Counter) -> dict[str, int]:
    """Counts in a fixed order, so the progress line does not reshuffle as they appear."""
    return {k: counts[k] for k in ATTEMPT_ENDINGS if counts.get(k)}


class _NullBar:
    n = 0

    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *a, **k) -> None: ...
    def close(self) -> None: ...


# -- the generation loop ----------------------------------------------------------------------------------


def make_backend(config: BuildConfig, problems: dict[str, Problem], runner: SandboxRunner):
    from codeflow.pipeline import backends

    if config.llm == "simulate":
        return backends.SimulateBackend(problems, config.seed, runner.fails)
    if not config.model:
        raise BuildError(f"--llm {config.llm} needs --model")
    if config.llm == "openai":
        from codeflow.llm import OpenAIClient

        client = OpenAIClient(
            config.base_url,
            config.model,
            api_key_env=config.api_key_env,
            concurrency=config.concurrency,
            timeout_s=config.request_timeout_s,
            max_retries=config.max_retries,
            rpm=config.rpm,
        )
        return backends.OpenAIBackend(client, config.max_new_tokens, config.temperature, config.seed)
    if config.llm == "transformers":
        from codeflow.llm import TransformersBackend

        return backends.TransformersBackend(
            TransformersBackend(config.model), config.max_new_tokens, config.temperature, config.seed
        )
    raise BuildError(f"unknown --llm {config.llm!r}: choose simulate, openai or transformers")


def skip_reason(config: BuildConfig, problem: Problem) -> str | None:
    if config.llm == "simulate" and not (problem.solution and problem.tests):
        return "the simulate backend needs a reference solution and tests"
    return None


class Builder:
    def __init__(
        self, config: BuildConfig, db: RunDB, problems: list[Problem], runner: SandboxRunner, backend
    ):
        self.config, self.db, self.runner, self.backend = config, db, runner, backend
        self.problems = {p.id: p for p in problems}
        self.order = [p.id for p in problems]
        self.backend_clock = BusyClock()  # wall time with at least one model request in flight
        self.diff_s = 0.0
        self.progress = Progress(config.progress)
        self.llm_errors: dict[str, str] = {}  # problem id -> why its last request failed (this run)
        self.sent = 0  # requests sent to the backend in this run
        self.counts: Counter = Counter()  # how attempts ended, for the progress line
        log = os.environ.get(REQUEST_LOG_ENV)
        self.request_log = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115

    # -- one request through the cache --------------------------------------------------------------------
    async def answer(self, req: LLMRequest) -> tuple[LLMAnswer, bool]:
        """The stored answer if the database has one (fresh = False), else the backend's (fresh = True). The
        caller stores a fresh answer together with what it makes of it, in one transaction."""
        req.request_hash = request_hash(self.backend.name, self.backend.model, self.backend.params, req)
        row = self.db.cached_response(req.request_hash)
        if row is not None:
            return LLMAnswer(row["text"], row["finish_reason"], model=row["model"] or ""), False
        if self.request_log:
            self.request_log.write(req.request_hash + "\n")
            self.request_log.flush()
        self.sent += 1
        with self.backend_clock.busy(), self.runner.engines.busy():
            return await self.backend.answer(req), True

    # -- stages 1-3 ---------------------------------------------------------------------------------------
    def generate_and_refine(self) -> None:
        asyncio.run(self._generate_and_refine())

    async def _generate_and_refine(self) -> None:
        """Every problem runs its own loop (ask, run the tests, ask again ...), all at once: a slow answer or a
        test run that times out holds up only its own problem. The backend bounds the requests in flight,
        the sandbox its jobs."""
        states = load_states(self.db)
        active = [pid for pid in self.order if skip_reason(self.config, self.problems[pid]) is None]
        bar = self.progress.bar("generate+refine", len(active))
        # Problems in progress at once: enough to keep the backend and the sandbox full, few enough that a
        # run of a million problems does not hold a million prompts, and that a kill loses little.
        slots = asyncio.Semaphore(max(64, 4 * (self.config.concurrency + self.runner.executor.parallelism)))

        async def solve(pid: str) -> None:
            async with slots:
                await self._solve(pid, states.get(pid) or ProblemState([]), bar)

        try:
            await asyncio.gather(*(solve(pid) for pid in active))
        finally:
            bar.close()
            await self.backend.aclose()

    async def _solve(self, pid: str, state: ProblemState, bar) -> None:
        problem = self.problems[pid]
        while not state.finished:
            if state.unexecuted:
                await self._execute(problem, state)
                continue
            if state.next_iteration > self.config.max_iterations:
                break
            req = next_request(problem, state)
            answer, fresh = await self.answer(req)
            call = [insert_call(self.backend, req, answer)] if fresh else []
            if answer.text is None:
                self.llm_errors[pid] = (
                    f"{answer.error_kind} after {answer.attempts} requests: {answer.error_message}"
                )
                self.db.write(call)
                self.counts["llm_error"] += 1
                break
            self.llm_errors.pop(pid, None)
            row = attempt_from_answer(problem, state, req, answer)
            self.db.write([*call, insert_attempt(row)])
            state.attempts.append(row)
            if row["answer_kind"] != "code":  # a failed attempt that never reaches the sandbox
                self.counts[row["answer_kind"]] += 1
            bar.set_postfix(ordered_counts(self.counts), refresh=False)
        bar.set_postfix(ordered_counts(self.counts), refresh=False)
        bar.update()  # this problem is done: passed, out of iterations, or its request failed

    async def _execute(self, problem: Problem, state: ProblemState) -> None:
        last = state.last
        outcome = (await self.runner.run([(problem, last["code"], state.frozen_tests)]))[0]
        it = last["iteration"]
        statements = [
            (
                "UPDATE attempts SET status = ?, error_type = ?, message = ?, failing_test = ?, traceback = ? "
                "WHERE problem_id = ? AND iteration = ?",
                (
                    outcome.status,
                    outcome.error_type,
                    outcome.message,
                    outcome.failing_test,
                    outcome.traceback,
                    problem.id,
                    it,
                ),
            )
        ]
        for case_index, r in enumerate(outcome.cases):
            statements.append(
                (
                    "INSERT OR REPLACE INTO executions (problem_id, iteration, case_index, status, wall_ms, "
                    "cpu_ms, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        problem.id,
                        it,
                        case_index,
                        r.get("status"),
                        r.get("wall_ms"),
                        r.get("cpu_ms"),
                        json.dumps(r),
                    ),
                )
            )
        self.db.write(statements)
        last.update(
            status=outcome.status,
            error_type=outcome.error_type,
            message=outcome.message,
            failing_test=outcome.failing_test,
            traceback=outcome.traceback,
        )
        self.counts["passed" if outcome.passed else "failed"] += 1

    def _exhausted(self, state: ProblemState) -> bool:
        last = state.last
        return (
            last is not None
            and last["status"] not in (None, "passed")
            and state.next_iteration > self.config.max_iterations
        )

    # -- outcomes -----------------------------------------------------------------------------------------
    def record_outcomes(self) -> dict[str, tuple[str, str | None, int | None]]:
        states = load_states(self.db)
        outcomes = {}
        for pid in self.order:
            reason = skip_reason(self.config, self.problems[pid])
            s = states.get(pid)
            if reason:
                outcomes[pid] = ("skipped", reason, None)
            elif s and s.finished:
                outcomes[pid] = ("passed", f"passed at iteration {s.last['iteration']}", s.last["iteration"])
            elif pid in self.llm_errors:
                outcomes[pid] = ("llm_error", self.llm_errors[pid], s.last["iteration"] if s else None)
            elif s and self._exhausted(s):
                outcomes[pid] = (
                    "exhausted",
                    f"still {s.last['status']} after {len(s.attempts)} attempts",
                    s.last["iteration"],
                )
            else:
                outcomes[pid] = ("unfinished", "interrupted; rerun the same command to resume", None)
        self.db.write(
            [("DELETE FROM outcomes", ())]
            + [
                (
                    "INSERT INTO outcomes (problem_id, status, reason, final_iteration) VALUES (?, ?, ?, ?)",
                    (pid, *o),
                )
                for pid, o in outcomes.items()
            ]
        )
        return outcomes

    # -- stages 4-7 ---------------------------------------------------------------------------------------
    def pair_filter_export(self) -> dict:
        t0 = time.perf_counter()
        from codeflow import __version__
        from codeflow.diff import diff_code  # tree-sitter's start-up is the diff engine's cost

        self.diff_s += time.perf_counter() - t0

        config = self.config
        states = load_states(self.db)
        count = filters.tokenizer_counter(config.tokenizer) if config.tokenizer else filters.char_proxy_tokens
        fconfig = filters.FilterConfig(config.max_diff_lines, config.max_tokens)
        benchmarks = ([] if config.no_humaneval else [decontam.humaneval_benchmark(config.ngram)]) + [
            decontam.file_benchmark(p, config.ngram) for p in config.decontam
        ]
        meta = {
            "backend": self.backend.name,
            "model": self.backend.model,
            "seed": config.seed,
            "granularity": config.granularity,
            "negative": config.negative,
            "toolkit_version": __version__,
        }
        candidates, verdicts, records = [], {}, {}
        bar = self.progress.bar("pair+filter", len(self.order))
        for pid in self.order:
            bar.update()
            s = states.get(pid)
            if s is None or not s.finished:
                continue
            failing = [a for a in s.attempts[:-1] if a["answer_kind"] == "code" and a["status"] != "passed"]
            if not failing:
                verdicts[pid] = ("first_try" if len(s.attempts) == 1 else "no_failing_code", None)
                continue
            rejected = pick_negative(failing, config.negative, config.seed, pid)
            chosen = s.last
            t0 = time.perf_counter()
            diff = diff_code(rejected["code"], chosen["code"], granularity=config.granularity)
            self.diff_s += time.perf_counter() - t0
            cand = filters.Candidate(pid, fenced(chosen["code"]), fenced(rejected["code"]), diff)
            reason = filters.static_verdict(cand, fconfig, count)
            verdicts[pid] = (reason or "kept", diff.kind)
            if reason is None:
                candidates.append((cand, chosen, rejected))
            bar.set_postfix(candidates=len(candidates), refresh=False)
        bar.close()
        if config.min_coverage is not None:
            self._filter_by_coverage(candidates, verdicts, config.min_coverage)
        if config.judge:
            self._judge(candidates, verdicts)
        for cand, chosen, rejected in candidates:
            if verdicts[cand.problem_id][0] != "kept":
                continue
            problem = self.problems[cand.problem_id]
            hit = decontam.contamination(benchmarks, problem.instruction, chosen["code"])
            if hit:
                verdicts[cand.problem_id] = ("contaminated", f"{hit[0]}: {hit[1]}")
                continue
            records[cand.problem_id] = pair_record(problem, cand, chosen, rejected, meta)
        self.db.write(
            [("DELETE FROM verdicts", ()), ("DELETE FROM pairs", ())]
            + [
                ("INSERT INTO verdicts (problem_id, stage, reason) VALUES (?, ?, ?)", (pid, v[0], v[1]))
                for pid, v in verdicts.items()
            ]
            + [
                (
                    "INSERT INTO pairs (problem_id, ord, record) VALUES (?, ?, ?)",
                    (pid, self.order.index(pid), json.dumps(rec)),
                )
                for pid, rec in records.items()
            ]
        )
        return verdicts

    def _filter_by_coverage(self, candidates: list, verdicts: dict, min_coverage: float) -> None:
        """Drop pairs whose frozen tests run under `min_coverage` of the chosen code's executable lines.

        Each chosen version is run once more with the sandbox's trusted line tracer; its results are stored
        in `coverage_runs`, so a rerun (or another threshold) measures nothing twice. Only the covered lines of
        these runs are used: the verdict that made the version `chosen` came from a run without tracing.
        """
        kept = [(c, ch) for c, ch, _ in candidates if verdicts[c.problem_id][0] == "kept"]
        measured = self._coverage_results([(self.problems[c.problem_id], ch) for c, ch in kept])
        for cand, _ in kept:
            fraction = union_coverage(measured[cand.problem_id])
            if filters.check_coverage(fraction, min_coverage):
                detail = "not measured" if fraction is None else f"{fraction:.3f} < {min_coverage:g}"
                verdicts[cand.problem_id] = ("low_coverage", detail)

    def _coverage_results(self, chosen: list[tuple[Problem, dict]]) -> dict[str, list[dict]]:
        """Problem id -> the coverage run's Result dicts of its chosen version, running the missing ones."""
        results: dict[tuple[str, int], list[dict]] = {}
        for r in self.db.query("SELECT problem_id, iteration, result FROM coverage_runs ORDER BY case_index"):
            results.setdefault((r["problem_id"], r["iteration"]), []).append(json.loads(r["result"]))
        missing = [(p, ch) for p, ch in chosen if (p.id, ch["iteration"]) not in results]
        if missing:
            asyncio.run(self._measure_coverage(missing, results))
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
            it = chosen["iteration"]
            self.db.write(  # one transaction per problem, as it finishes: a kill loses only those in flight
                (
                    "INSERT OR REPLACE INTO coverage_runs (problem_id, iteration, case_index, status, wall_ms, "
                    "cpu_ms, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (problem.id, it, i, r.get("status"), r.get("wall_ms"), r.get("cpu_ms"), json.dumps(r)),
                )
                for i, r in enumerate(outcome.cases)
            )
            results[(problem.id, it)] = outcome.cases
            fraction = union_coverage(outcome.cases)
            low += fraction is None or fraction < (self.config.min_coverage or 0.0)
            bar.set_postfix(below_threshold=low, refresh=False)
            bar.update()

        try:
            await asyncio.gather(*(measure(p, ch) for p, ch in missing))
        finally:
            bar.close()

    def _judge(self, candidates: list, verdicts: dict) -> None:
        kept = [(c, ch, rj) for c, ch, rj in candidates if verdicts[c.problem_id][0] == "kept"]
        asyncio.run(self._judge_all(kept, verdicts))

    async def _judge_all(self, kept: list, verdicts: dict) -> None:
        async def judge(cand: filters.Candidate, chosen: dict, rejected: dict) -> None:
            req = LLMRequest(
                "judge",
                cand.problem_id,
                -1,
                prompts.judge_messages(rejected["code"], chosen["code"]),
                context={"rejected": rejected["code"], "chosen": chosen["code"]},
            )
            answer, fresh = await self.answer(req)
            if fresh:
                self.db.write([insert_call(self.backend, req, answer)])
            functional = prompts.parse_judgement(answer.text) if answer.text is not None else None
            if functional is False:
                verdicts[cand.problem_id] = ("judge_cosmetic", None)
            elif functional is None:
                verdicts[cand.problem_id] = ("judge_unclear", answer.error_kind)

        try:
            await asyncio.gather(*(judge(*k) for k in kept))
        finally:
            await self.backend.aclose()


# -- the whole build --------------------------------------------------------------------------------------


def check_resumable(db: RunDB, config: BuildConfig) -> None:
    stored = db.get_meta("generation")
    wanted = {k: getattr(config, k) for k in GENERATION_KEYS}
    if stored is None:
        db.set_meta({"generation": wanted})
    elif stored != wanted:
        changed = ", ".join(
            f"{k}: {stored.get(k)!r} -> {wanted[k]!r}" for k in wanted if stored.get(k) != wanted[k]
        )
        raise BuildError(
            f"{db.path} was built with other generation settings ({changed}); "
            f"use a new --out directory or the original settings"
        )


def store_problems(db: RunDB, problems: list[Problem]) -> None:
    known = {r["id"]: r["data"] for r in db.query("SELECT id, data FROM problems")}
    changed = [p.id for p in problems if p.id in known and known[p.id] != json.dumps(p.to_dict())]
    if changed:
        raise BuildError(
            f"problem(s) {', '.join(changed[:5])} changed since this run directory was built; "
            f"use a new --out directory"
        )
    base = len(known)
    new = [p for p in problems if p.id not in known]
    db.write(
        ("INSERT INTO problems (id, ord, data) VALUES (?, ?, ?)", (p.id, base + i, json.dumps(p.to_dict())))
        for i, p in enumerate(new)
    )


@dataclass
class BuildResult:
    problems: int
    skipped_lines: int
    outcomes: Counter
    verdicts: Counter
    pairs: int
    requests_sent: int
    sandbox_jobs: int  # all jobs this run sent to the sandbox, the simulate backend's bug checks included
    db_commits: int  # transactions this run committed (the last TIMING_COMMITS record timings)
    timings: dict
    pairs_path: Path


def build(config: BuildConfig, executor: Executor | None = None) -> BuildResult:
    t_start = time.perf_counter()
    report = load_problems(config.problems, strict=config.strict)
    for error in report.errors:
        print(f"skipped {error}", file=sys.stderr)
    if not report.problems:
        raise BuildError(f"{config.problems}: no valid problems")
    if config.min_coverage is not None and not 0.0 <= config.min_coverage <= 1.0:
        raise BuildError(f"--min-coverage must be a fraction between 0 and 1, got {config.min_coverage}")
    out = Path(config.out)
    db = open_run_db(out)
    own_executor = executor is None
    try:
        check_resumable(db, config)
        db.set_meta({"config": asdict(config)})
        store_problems(db, report.problems)
        executor = executor or Executor(config.workers, config.exec_timeout_s, config.memory_mb)
        executor.self_check()
        runner = SandboxRunner(executor, BusyClock())
        backend = make_backend(config, {p.id: p for p in report.problems}, runner)
        builder = Builder(config, db, report.problems, runner, backend)
        try:
            builder.generate_and_refine()
            outcomes = builder.record_outcomes()
            verdicts = builder.pair_filter_export()
        finally:
            runner.close()
        pairs_path = write_pairs(db, out / "pairs.jsonl")
        wall = time.perf_counter() - t_start
        timings = {
            "backend": builder.backend_clock.seconds,
            "sandbox": runner.clock.seconds,
            # wall time in which neither the model nor the sandbox was working: the pipeline's own share
            "idle_engines": wall - runner.engines.seconds - executor.startup_s,
            "diff": builder.diff_s,
            "database": db.seconds,
            "wall": wall,
        }
        for part, seconds in timings.items():  # TIMING_COMMITS commits, after pairs.jsonl is written
            db.add_timing(part, seconds)
        return BuildResult(
            problems=len(report.problems),
            skipped_lines=report.skipped,
            outcomes=Counter(o[0] for o in outcomes.values()),
            verdicts=Counter(v[0] for v in verdicts.values()),
            pairs=sum(1 for v in verdicts.values() if v[0] == "kept"),
            requests_sent=builder.sent,
            sandbox_jobs=executor.executions,
            db_commits=db.commits,
            timings=timings,
            pairs_path=pairs_path,
        )
    finally:
        if own_executor and executor is not None:
            executor.close()
        db.close()
