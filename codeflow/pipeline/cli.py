"""`codeflow build`, `codeflow stats` and `codeflow show`."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    b = subparsers.add_parser(
        "build",
        help="build preference pairs from problems by generate -> sandbox -> refine",
        description="Build CodeFlow preference pairs. Rerun the same command to resume an interrupted run.",
    )
    b.add_argument("problems", help="problems JSONL (id, instruction, tests, test_style, solution, ...)")
    b.add_argument("--out", required=True, help="run directory (holds codeflow.db and pairs.jsonl)")
    b.add_argument("--llm", choices=["simulate", "openai", "transformers"], default="simulate")
    b.add_argument("--model", default="", help="model name at the endpoint, or a local path / hub name")
    b.add_argument(
        "--base-url", default="http://localhost:8000/v1", help="OpenAI-compatible endpoint (openai)"
    )
    b.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    b.add_argument("--concurrency", type=int, default=8, help="requests in flight (openai)")
    b.add_argument("--request-timeout", type=float, default=120.0, help="seconds per HTTP request")
    b.add_argument("--max-retries", type=int, default=6, help="retries per request after the first (openai)")
    b.add_argument("--rpm", type=float, default=None, help="client-side limit on requests per minute")
    b.add_argument("--temperature", type=float, default=0.2, help="sampling temperature")
    b.add_argument("--max-new-tokens", type=int, default=2048, help="answer length limit per request")
    b.add_argument("--max-iterations", type=int, default=5, help="refinements after the first attempt")
    b.add_argument(
        "--negative",
        choices=["random", "first", "last"],
        default="random",
        help="which failing version becomes the rejected side (random is seeded by --seed)",
    )
    b.add_argument(
        "--seed", type=int, default=0, help="seeds sampling, simulate's bugs and --negative random"
    )
    b.add_argument(
        "--granularity",
        choices=["statement", "node", "token", "line"],
        default="statement",
        help="what D+ / D- mark: changed statements, AST nodes, tokens or lines",
    )
    b.add_argument("--max-diff-lines", type=int, default=20, help="drop pairs whose D- spans more lines")
    b.add_argument(
        "--max-tokens", type=int, default=2048, help="drop pairs with a side over this many tokens"
    )
    b.add_argument("--tokenizer", default=None, help="tokenizer for --max-tokens (default: characters / 3)")
    b.add_argument("--judge", action="store_true", help="ask the LLM whether each difference is functional")
    b.add_argument(
        "--min-coverage",
        type=_fraction,
        default=None,
        metavar="F",
        help="keep pairs whose tests run at least this fraction (0..1) of the chosen code's lines",
    )
    b.add_argument(
        "--decontam", action="append", default=[], metavar="FILE", help="benchmark JSONL (repeatable)"
    )
    b.add_argument("--ngram", type=int, default=13, help="words per n-gram for decontamination")
    b.add_argument("--no-humaneval", action="store_true", help="do not decontaminate against HumanEval")
    b.add_argument("--strict", action="store_true", help="stop at the first bad problem line")
    b.add_argument("--workers", type=int, default=None, help="sandbox worker processes")
    b.add_argument("--exec-timeout", type=float, default=10.0, help="seconds per sandbox run")
    b.add_argument("--memory-mb", type=int, default=1024, help="memory limit per sandbox run")
    b.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    b.set_defaults(func=run_build)

    s = subparsers.add_parser(
        "stats", help="summarise a run: pass rate by iteration, filter funnel, LLM usage"
    )
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON")
    s.set_defaults(func=run_stats)

    w = subparsers.add_parser("show", help="print one pair with D- / D+ highlighted, and its trajectory")
    w.add_argument("run_dir")
    w.add_argument("--pair", type=int, default=0, help="0-based line number in pairs.jsonl")
    w.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    w.set_defaults(func=run_show)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def run_build(args: argparse.Namespace) -> int:
    from codeflow.pipeline.build import BuildConfig, BuildError, build
    from codeflow.pipeline.execute import SandboxCheckError
    from codeflow.pipeline.problems import ProblemFileError
    from codeflow.pipeline.stats import collect, render

    config = BuildConfig(
        problems=args.problems,
        out=args.out,
        llm=args.llm,
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        request_timeout_s=args.request_timeout,
        max_retries=args.max_retries,
        rpm=args.rpm,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        max_iterations=args.max_iterations,
        negative=args.negative,
        seed=args.seed,
        granularity=args.granularity,
        max_diff_lines=args.max_diff_lines,
        max_tokens=args.max_tokens,
        tokenizer=args.tokenizer,
        judge=args.judge,
        min_coverage=args.min_coverage,
        decontam=args.decontam,
        ngram=args.ngram,
        no_humaneval=args.no_humaneval,
        strict=args.strict,
        workers=args.workers,
        exec_timeout_s=args.exec_timeout,
        memory_mb=args.memory_mb,
        progress=not args.no_progress,
    )
    try:
        result = build(config)
    except (BuildError, ProblemFileError, SandboxCheckError, FileNotFoundError, ValueError) as e:
        print(f"codeflow build: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ncodeflow build: interrupted; rerun the same command to resume from {args.out}",
            file=sys.stderr,
        )
        return 130
    print(render(collect(args.out)))
    print(
        f"\n{result.pairs} pairs -> {result.pairs_path} ({result.requests_sent} LLM requests sent this run)"
    )
    return 0


def _print(text: str) -> None:
    try:
        print(text)
    except BrokenPipeError:  # `| head` closed the pipe early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing may write to the closed pipe at exit


def run_stats(args: argparse.Namespace) -> int:
    import json

    from codeflow.pipeline.stats import collect, render

    try:
        stats = collect(args.run_dir)
    except FileNotFoundError as e:
        print(f"codeflow stats: error: {e}", file=sys.stderr)
        return 2
    _print(json.dumps(stats, indent=2) if args.json else render(stats))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from codeflow.pipeline.show import show

    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    try:
        text = show(args.run_dir, args.pair, color=color)
    except (FileNotFoundError, IndexError) as e:
        print(f"codeflow show: error: {e}", file=sys.stderr)
        return 2
    _print(text)
    return 0
