"""What `focal-dpo eval` does with its parsed arguments."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from focal_dpo.eval.problems import ProblemFileError, load_benchmark
from focal_dpo.eval.programs import stop_strings
from focal_dpo.eval.report import format_compare, format_summary, load_summary
from focal_dpo.eval.results import ResultsFileError
from focal_dpo.eval.runner import EvalSettings, GenerationIncomplete, RunMismatchError, evaluate


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare(*args.compare)
    if not args.model:
        print("focal-dpo eval: --model is required (or use --compare A B)", file=sys.stderr)
        return 2
    problem = _check_numbers(args)
    if problem:
        print(f"focal-dpo eval: {problem}", file=sys.stderr)
        return 2
    if args.n > 1 and args.temperature == 0:
        print("warning: --n > 1 with --temperature 0 repeats the same greedy answer", file=sys.stderr)
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
    except (ProblemFileError, ResultsFileError, RunMismatchError, GenerationIncomplete) as e:
        print(f"focal-dpo eval: {e}", file=sys.stderr)
        return 1
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
    return None


def _generator(args: argparse.Namespace, stop: list[str]):
    from focal_dpo.eval.backends import openai_generator, transformers_generator

    common = dict(chat=args.chat, stop=stop, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    if args.backend == "openai":
        seed = args.seed if args.temperature > 0 else None
        return openai_generator(
            args.model,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            concurrency=args.concurrency,
            seed=seed,
            **common,
        )
    return transformers_generator(
        args.model, batch_size=args.batch_size, seed=args.seed, device=args.device, dtype=args.dtype, **common
    )


def _compare(path_a: str, path_b: str) -> int:
    try:
        a, b = load_summary(path_a), load_summary(path_b)
    except ValueError as e:
        print(f"focal-dpo eval --compare: {e}", file=sys.stderr)
        return 1
    print(format_compare(a, b, _label(path_a), _label(path_b)))
    return 0


def _label(path: str) -> str:
    """A/summary.json -> A: the run directory names the column."""
    p = Path(path)
    return p.parent.name if p.name == "summary.json" and p.parent.name else p.stem
