"""The eval loop: generate a batch, score it in the sandbox, append it to results.jsonl; then summarise."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focal_dpo.eval.problems import Problem
from focal_dpo.eval.programs import build_program, render_prompt
from focal_dpo.eval.report import summarize
from focal_dpo.eval.results import SampleResult, append_results, read_results, write_json_atomic

# The whole generation side: rendered prompts in, raw answers out, same order. Tests plug in fakes here.
# An Exception in place of an answer (a request that failed for good) leaves that sample for a rerun.
Generate = Callable[[list[str]], "list[str | Exception]"]

# Settings that change what a sample means; a rerun into the same --out must match them to resume.
RUN_KEYS = ("benchmark", "model", "backend", "chat", "temperature", "max_new_tokens")


@dataclass
class EvalSettings:
    benchmark: str
    model: str
    backend: str = "custom"
    chat: bool = False
    n: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 768
    batch_size: int = 16
    timeout_s: float = 10.0
    memory_mb: int = 2048
    workers: int | None = None

    def run_info(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in RUN_KEYS}


class RunMismatchError(ValueError):
    """--out holds results of a different run."""


class GenerationIncomplete(RuntimeError):
    """Some answers could not be generated; their samples are not in results.jsonl, so a rerun retries them."""


def evaluate(
    problems: list[Problem],
    generate: Generate,
    out_dir: str | Path,
    settings: EvalSettings,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every (problem, sample) pair missing from OUT/results.jsonl, then write OUT/summary.json."""
    from tqdm import tqdm

    from sandbox import Limits, Sandbox

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunMismatchError(f"--out {out} is a file; give a directory for the results")
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = read_results(results_path)
    _check_same_run(out / "run.json", settings.run_info(), has_results=bool(done))
    todo = [(p, s) for p in problems for s in range(settings.n) if (p.task_id, s) not in done]
    limits = Limits(timeout_s=settings.timeout_s, memory_mb=settings.memory_mb)
    total = len(problems) * settings.n
    failures: list[tuple[tuple[Problem, int], Exception]] = []
    with (
        Sandbox(workers=settings.workers, limits=limits) if todo else nullcontext() as sandbox,
        tqdm(total=total, initial=total - len(todo), desc="eval", unit="sample", disable=not progress) as bar,
    ):
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start : start + settings.batch_size]
            answers = generate([render_prompt(p, settings.chat) for p, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"the generator returned {len(answers)} answers for {len(batch)} prompts")
            failed = [(key, a) for key, a in zip(batch, answers, strict=True) if isinstance(a, Exception)]
            failures.extend(failed)
            ok = [(key, a) for key, a in zip(batch, answers, strict=True) if not isinstance(a, Exception)]
            scored = score_batch(sandbox, [k for k, _ in ok], [a for _, a in ok], settings.chat)
            append_results(results_path, scored)
            for r in scored:
                done[(r.task_id, r.sample)] = r
            bar.set_postfix(passed=sum(r.status == "passed" for r in done.values()), refresh=False)
            bar.update(len(batch))
    if failures:
        raise GenerationIncomplete(_failure_summary(failures, len(done), results_path))
    summary = summarize(problems, done, settings.n, settings.run_info())
    write_json_atomic(out / "summary.json", summary)
    return summary


def score_batch(
    sandbox: Any, batch: list[tuple[Problem, int]], answers: list[str], chat: bool
) -> list[SampleResult]:
    """Run every sample of the batch in one `run_many` call so all sandbox workers stay busy."""
    from sandbox.suite import run_suites

    programs = [build_program(p, answer, chat) for (p, _), answer in zip(batch, answers, strict=True)]
    outcomes = run_suites(
        sandbox, [(p.suite, program) for (p, _), (_, program) in zip(batch, programs, strict=True)]
    )
    return [
        SampleResult(
            task_id=problem.task_id,
            sample=sample,
            completion=completion,
            status=verdict.status,
            error_type=verdict.error_type,
            failing_test=verdict.failing_test,
            message=verdict.message,
            traceback=verdict.traceback,
        )
        for (problem, sample), (completion, _), verdict in zip(batch, programs, outcomes, strict=True)
    ]


def _failure_summary(failures: list, scored: int, results_path: Path) -> str:
    """How many samples got no answer, one example per error kind, and what to do."""
    from codeflow.llm.types import error_examples

    def kind(error: Exception) -> str:
        return getattr(error, "kind", type(error).__name__)

    where = {}
    for (problem, sample), error in failures:
        where.setdefault((kind(error), str(error)), f"{problem.task_id} sample {sample}")
    examples = "; ".join(
        f"{k} {n}, e.g. {where[(k, message)]}: {message}"
        for k, n, message in error_examples((kind(e), str(e)) for _, e in failures)
    )
    return (
        f"{len(failures)} samples got no answer ({examples}); the {scored} scored ones are in {results_path}; "
        f"fix the cause, then rerun the same command to retry the rest"
    )


def _check_same_run(path: Path, info: dict[str, Any], has_results: bool = True) -> None:
    """Refuse an --out that holds another run's results; a directory with no result yet (a run that failed
    to start, e.g. a wrong --model) is taken over by the new settings."""
    import json

    if path.exists() and has_results:
        before = json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (before.get(k), v) for k, v in info.items() if before.get(k) != v}
        if diff:
            what = ", ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in diff.items())
            raise RunMismatchError(f"{path.parent} holds another run's results ({what}); use a new --out")
        return
    write_json_atomic(path, info)
