"""What `focal-dpo eval` does with its parsed arguments."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from codeflow.cli import error_line
from focal_dpo.eval.problems import ProblemFileError, load_benchmark
from focal_dpo.eval.programs import stop_strings
from focal_dpo.eval.report import format_compare, format_summary, load_summary
from focal_dpo.eval.results import ResultsFileError
from focal_dpo.eval.runner import EvalSettings, GenerationIncomplete, RunMismatchError, evaluate

COMMAND = "focal-dpo eval"


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare(*args.compare)
    if not args.model:
        error_line(COMMAND, "--model is required (or use --compare A B)")
        return 2
    problem = _check_numbers(args)
    if problem:
        error_line(COMMAND, problem)
        return 2
    if args.no_progress:
        from codeflow.cli import silence_third_party_bars

        silence_third_party_bars(("transformers",) if args.backend == "transformers" else ())
    if args.n > 1 and args.temperature == 0:
        print("warning: --n > 1 with --temperature 0 repeats the same greedy answer", file=sys.stderr)
    generate = None
    try:
        benchmark, problems = load_benchmark(args.benchmark)
        if args.limit is not None:
            problems = problems[: args.limit]
        settings = EvalSettings(
            benchmark=benchmark,
            model=args.model,
            backend=args.backend,
            chat=args.chat,
            n=args.n,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            timeout_s=args.timeout,
            memory_mb=args.memory_mb,
            workers=args.workers,
        )
        out = Path(args.out) if args.out else default_out(benchmark, args.model)
        generate = _generator(args, stop_strings(problems, args.chat))
        summary = evaluate(problems, generate, out, settings, progress=not args.no_progress)
    except (ProblemFileError, ResultsFileError, RunMismatchError, ValueError) as e:
        error_line(COMMAND, e)
        return 2
    except GenerationIncomplete as e:
        error_line(COMMAND, e)
        return 1
    except KeyboardInterrupt:
        print(f"\n{COMMAND}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if generate is not None:
            generate.close()
    print(format_summary(summary))
    print(f"results: {out / 'results.jsonl'}\nsummary: {out / 'summary.json'}")
    return 0


def default_out(benchmark: str, model: str) -> Path:
    return Path("runs") / "eval" / benchmark / re.sub(r"[^\w.-]+", "__", model.strip("/"))


def _check_numbers(args: argparse.Namespace) -> str | None:
    for name in ("n", "max_new_tokens", "batch_size", "concurrency", "memory_mb"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1"
    if args.temperature < 0 or args.timeout <= 0:
        return "--temperature must be >= 0 and --timeout > 0"
    if args.request_timeout_s <= 0 or args.max_retries < 0 or args.retry_connect_s < 0:
        return "--request-timeout must be > 0, --max-retries and --retry-connect >= 0"
    return None


def _generator(args: argparse.Namespace, stop: list[str]):
    from codeflow.cli import options_from_args
    from codeflow.llm.registry import LLMOptions, open_chat_model
    from focal_dpo.eval.backends import ModelGenerator

    model = open_chat_model(args.backend, options_from_args(LLMOptions, args), batch_size=args.batch_size)
    return ModelGenerator(
        model,
        chat=args.chat,
        stop=stop,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
    )


def _compare(path_a: str, path_b: str) -> int:
    try:
        a, b = load_summary(path_a), load_summary(path_b)
    except ValueError as e:
        error_line(f"{COMMAND} --compare", e)
        return 2
    print(format_compare(a, b, _label(path_a), _label(path_b)))
    return 0


def _label(path: str) -> str:
    """A/summary.json or A -> A: the run directory names the column."""
    p = Path(path)
    if p.is_dir():
        return p.name or str(p)
    return p.parent.name if p.name == "summary.json" and p.parent.name else p.stem
