"""`codeflow build`: generate -> execute -> refine (loop) -> pair -> diff/filter -> decontaminate -> export.

One event loop per build runs the generation (generation.py: the per-problem loop through the request cache)
and then the selection of pairs (selection.py: pair, filters, coverage, judge, decontamination). Everything a
stage produces is committed to the run's database as it arrives; what a rerun finds there it does not redo, and
no request whose answer is stored is sent again. The options of a build are declared once, in `BuildConfig`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from codeflow.llm.registry import open_chat_model
from codeflow.pipeline.calls import ModelCalls
from codeflow.pipeline.clock import BusyClock
from codeflow.pipeline.config import GENERATION_KEYS, BuildConfig
from codeflow.pipeline.db import RunDB, open_run_db
from codeflow.pipeline.execute import Executor, SandboxRunner
from codeflow.pipeline.export import write_pairs
from codeflow.pipeline.generation import Generation
from codeflow.pipeline.problems import Problem
from codeflow.pipeline.progress import Progress
from codeflow.pipeline.selection import Selection
from codeflow.pipeline.shards import parse_shard
from codeflow.pipeline.sources import MAX_ERRORS_SHOWN, SourceReport, load_source

TIMING_COMMITS = 1  # the timings of a run are its last commit, after pairs.jsonl is written


class BuildError(RuntimeError):
    """A build that cannot start or continue; the message says what to change."""


# -- the backend ------------------------------------------------------------------------------------------


def make_backend(config: BuildConfig, problems: dict[str, Problem], runner: SandboxRunner):
    from codeflow.pipeline import backends

    if config.llm == "simulate":
        return backends.SimulateBackend(problems, config.seed, runner.fails)
    try:
        model = open_chat_model(config.llm, config)
    except ValueError as e:
        raise BuildError(f"--llm {config.llm}: {e}") from None
    return backends.ChatBackend(model, config.max_new_tokens, config.temperature, config.seed)


def skip_reason(config: BuildConfig, problem: Problem) -> str | None:
    if config.llm == "simulate" and not (problem.solution and problem.tests):
        return "the simulate backend needs a reference solution and tests"
    return None


# -- the whole build --------------------------------------------------------------------------------------


def check_resumable(db: RunDB, config: BuildConfig) -> None:
    stored = db.get_meta("generation")
    wanted = {k: getattr(config, k) for k in GENERATION_KEYS} | {"shard": config.shard}
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


def store_problems(db: RunDB, problems: list[Problem], positions: dict[str, int]) -> None:
    import json

    known = db.stored_problems()
    rows = [(p.id, positions[p.id], json.dumps(p.to_dict())) for p in problems]
    changed = [pid for pid, _, data in rows if pid in known and known[pid] != data]
    if changed:
        raise BuildError(
            f"problem(s) {', '.join(changed[:5])} changed since this run directory was built; "
            f"use a new --out directory"
        )
    db.store_problems(rows)


@dataclass
class BuildResult:
    problems: int
    skipped_lines: int  # source rows that could not be read (this shard's share)
    outcomes: Counter
    verdicts: Counter
    pairs: int
    calls: int  # model calls made in this run (answers asked for; stored answers are not asked again)
    requests: int  # HTTP requests those calls sent, retries included
    resumed: (
        tuple[int, int] | None
    )  # (problems already finished, problems to build) when the directory held a run
    llm_errors: list[
        tuple[str, str, str]
    ]  # (problem id, kind, message) of the problems that ended in llm_error
    sandbox_jobs: int  # all jobs this run sent to the sandbox, the simulate backend's bug checks included
    db_commits: int  # transactions this run committed (the last TIMING_COMMITS record timings)
    timings: dict
    pairs_path: Path


def read_problems(config: BuildConfig) -> tuple[SourceReport, dict[str, int]]:
    """The source's problems and every problem's position in it (what orders pairs.jsonl, shards or not)."""
    report = load_source(
        config.problems,
        format=config.format,
        maps=config.map,
        split=config.split,
        dataset_config=config.dataset_config,
        strict=config.strict,
        progress=config.progress,
    )
    return report, {p.id: i for i, p in enumerate(report.problems)}


def report_bad_rows(errors: list[str]) -> None:
    for error in errors[:MAX_ERRORS_SHOWN]:
        print(f"skipped {error}", file=sys.stderr)
    if len(errors) > MAX_ERRORS_SHOWN:
        print(
            f"skipped {len(errors) - MAX_ERRORS_SHOWN} more bad rows (codeflow stats counts them)",
            file=sys.stderr,
        )


def build(config: BuildConfig, executor: Executor | None = None) -> BuildResult:
    t_start = time.perf_counter()
    if config.min_coverage is not None and not 0.0 <= config.min_coverage <= 1.0:
        raise BuildError(f"--min-coverage must be a fraction between 0 and 1, got {config.min_coverage}")
    if not config.progress:
        from codeflow.cli import silence_third_party_bars

        uses_transformers = config.llm == "transformers" or config.tokenizer is not None
        silence_third_party_bars(("transformers",) if uses_transformers else ())
    shard = parse_shard(config.shard) if config.shard else None
    report, positions = read_problems(config)
    bad = [
        (*error.split(": ", 1), i)
        for i, error in enumerate(report.errors)
        if shard is None or shard.holds(error.split(": ", 1)[0])
    ]
    problems = [p for p in report.problems if shard is None or shard.holds(p.id)]
    report_bad_rows([f"{where}: {reason}" for where, reason, _ in bad])
    if not report.problems:
        raise BuildError(f"{config.problems}: no valid problems")
    out = Path(config.out)
    db = open_run_db(out)
    own_executor = executor is None
    try:
        check_resumable(db, config)
        db.set_meta({"config": asdict(config)})
        store_problems(db, problems, positions)
        db.replace_bad_rows([(where, i, reason) for where, reason, i in bad])
        executor = executor or Executor(config.workers, config.exec_timeout_s, config.memory_mb)
        executor.self_check(tuple({p.test_style for p in problems}))
        engines = BusyClock()
        runner = SandboxRunner(executor, engines)
        try:
            backend = make_backend(config, {p.id: p for p in problems}, runner)
            calls = ModelCalls(db, backend, engines)
            progress = Progress(config.progress)
            selection = Selection(
                db, problems, runner, calls, config.selection_settings(), progress, pair_meta(config, backend)
            )
            generation = Generation(
                db,
                problems,
                runner,
                calls,
                max_iterations=config.max_iterations,
                skip_reason=lambda p: skip_reason(config, p),
                progress=progress,
                concurrency=config.concurrency,
                on_passed=selection.prepare,  # its diff overlaps with the other problems' work
            )
            done, total = generation.finished()
            resumed = (done, total) if db.attempts() else None
            if resumed:
                print(f"resuming: {done} of {total} problems finished", file=sys.stderr)

            async def stages() -> None:
                try:
                    await generation.run()
                    generation.record_outcomes()
                    await selection.run(positions)
                finally:
                    await calls.aclose()

            asyncio.run(stages())
        finally:
            runner.close()
        outcomes = {r["problem_id"]: r for r in db.outcomes()}
        pairs_path = write_pairs(db, out / "pairs.jsonl")
        wall = time.perf_counter() - t_start
        timings = {
            "backend": calls.clock.seconds,
            "sandbox": runner.clock.seconds,
            # wall time in which neither the model nor the sandbox was working: the pipeline's own share
            "idle_engines": wall - engines.seconds - executor.startup_s,
            "diff": selection.diff_s,
            "database": db.seconds,
            "wall": wall,
        }
        db.add_timings(timings)  # TIMING_COMMITS commit, after pairs.jsonl is written
        verdicts = Counter(v["stage"] for v in db.verdicts())
        return BuildResult(
            problems=len(problems),
            skipped_lines=len(bad),
            outcomes=Counter(o["status"] for o in outcomes.values()),
            verdicts=verdicts,
            pairs=verdicts["kept"],
            calls=calls.calls,
            requests=calls.requests,
            resumed=resumed,
            llm_errors=[  # in the source's order, so the examples printed do not depend on timing
                (pid, generation.failures[pid].kind, generation.failures[pid].message)
                for pid in generation.order
                if pid in generation.failures and outcomes.get(pid, {}).get("status") == "llm_error"
            ],
            sandbox_jobs=executor.executions,
            db_commits=db.commits,
            timings=timings,
            pairs_path=pairs_path,
        )
    finally:
        if own_executor and executor is not None:
            executor.close()
        db.close()


def pair_meta(config: BuildConfig, backend) -> dict:
    from codeflow import __version__

    return {
        "backend": backend.name,
        "model": backend.model,
        "seed": config.seed,
        "granularity": config.granularity,
        "negative": config.negative,
        "toolkit_version": __version__,
    }
