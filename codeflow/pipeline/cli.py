"""`codeflow build`, `codeflow merge`, `codeflow stats` and `codeflow show`."""

from __future__ import annotations

import argparse
import os
import sys

from codeflow.cli import add_options, error_line, one_line_errors, options_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    from dataclasses import fields

    from codeflow.llm.registry import LLMOptions
    from codeflow.pipeline.config import BuildConfig

    b = subparsers.add_parser(
        "build",
        help="build preference pairs from problems by generate -> sandbox -> refine",
        description="Build CodeFlow preference pairs. Rerun the same command to resume an interrupted run.",
    )
    model_options = {f.name for f in fields(LLMOptions)}
    add_options(b, BuildConfig, skip=model_options)
    add_options(b.add_argument_group("the model (--llm openai or transformers)"), LLMOptions)
    b.set_defaults(func=run_build)
    one_line_errors(b, "codeflow build")

    m = subparsers.add_parser(
        "merge",
        help="merge the run directories of a build's shards (--shard K/N) into one",
        description="Merge shard run directories into --out: its pairs.jsonl and stats are those of one run "
        "of all the problems.",
    )
    m.add_argument("runs", nargs="+", metavar="RUN", help="the shards' run directories, all N of them")
    m.add_argument("--out", required=True, help="the merged run directory (must not hold a run yet)")
    m.set_defaults(func=run_merge)
    one_line_errors(m, "codeflow merge")

    s = subparsers.add_parser(
        "stats", help="summarise a run: pass rate by iteration, filter funnel, LLM usage"
    )
    s.add_argument("run_dir")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON")
    s.add_argument(
        "--no-timings",
        action="store_true",
        help="leave out measured seconds (what differs between two builds of the same problems)",
    )
    s.set_defaults(func=run_stats)
    one_line_errors(s, "codeflow stats")

    w = subparsers.add_parser("show", help="print one pair with D- / D+ highlighted, and its trajectory")
    w.add_argument("run_dir")
    w.add_argument("--pair", type=int, default=0, help="0-based line number in pairs.jsonl (default: 0)")
    w.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="(default: auto)")
    w.add_argument(
        "--html",
        metavar="FILE",
        help="write the pair as a self-contained web page (code, D- and D+, token masks) instead",
    )
    w.add_argument(
        "--tokenizer",
        help="tokenizer for the page's token masks (default: the run's --tokenizer, if it had one)",
    )
    w.set_defaults(func=run_show)
    one_line_errors(w, "codeflow show")


def _bad_input_errors() -> tuple[type[Exception], ...]:
    from codeflow.pipeline.build import BuildError
    from codeflow.pipeline.db import RunDirError
    from codeflow.pipeline.problems import ProblemFileError
    from codeflow.pipeline.sources import SourceError

    return (
        BuildError,
        ProblemFileError,
        SourceError,
        RunDirError,
        FileNotFoundError,
        IsADirectoryError,
        ValueError,
    )


def run_build(args: argparse.Namespace) -> int:
    from codeflow.pipeline.build import BuildConfig, build
    from codeflow.pipeline.execute import SandboxCheckError
    from codeflow.pipeline.stats import collect, render

    config = options_from_args(BuildConfig, args)
    try:
        if config.ray:
            from codeflow.pipeline.cluster import build_on_ray

            result = build_on_ray(config)
        else:
            result = build(config)
    except _bad_input_errors() as e:
        error_line("codeflow build", e)
        return 2
    except SandboxCheckError as e:
        error_line("codeflow build", e)
        return 1
    except KeyboardInterrupt:
        print(
            f"\ncodeflow build: interrupted; rerun the same command to resume from {args.out}",
            file=sys.stderr,
        )
        return 130
    _print(render(collect(args.out)))
    _print(
        f"\n{result.pairs} pairs -> {result.pairs_path} "
        f"({result.calls} model calls this run, {result.requests} HTTP requests)"
    )
    if result.llm_errors:
        print_llm_errors(result.llm_errors, args.out)
        return 1
    return 0


def print_llm_errors(errors: list[tuple[str, str, str]], out: str) -> None:
    """One example message per error kind, and how to go on: a failed call is asked again by a rerun."""
    from codeflow.llm.types import error_examples

    by_message: dict[tuple[str, str], str] = {}
    for pid, kind, message in errors:
        by_message.setdefault((kind, message), pid)  # the first problem with that message names it
    print(
        f"codeflow build: {len(errors)} problem(s) ended in llm_error (their model calls failed after retries):",
        file=sys.stderr,
    )
    for kind, n, message in error_examples((kind, message) for _, kind, message in errors):
        print(f"  {kind}: {n} problem(s), e.g. {by_message[(kind, message)]}: {message}", file=sys.stderr)
    print(
        f"fix the cause (the server, --model, --base-url), then rerun the same command: it resumes from {out} "
        f"and asks again only what failed",
        file=sys.stderr,
    )


def run_merge(args: argparse.Namespace) -> int:
    from codeflow.pipeline.db import RunDirError
    from codeflow.pipeline.shards import merge
    from codeflow.pipeline.stats import collect, render

    try:
        path = merge(args.runs, args.out)
    except (RunDirError, ValueError, FileNotFoundError) as e:
        error_line("codeflow merge", e)
        return 2
    _print(render(collect(args.out)))
    _print(f"\nmerged {len(args.runs)} shards -> {path}")
    return 0


def _print(text: str) -> None:
    try:
        print(text)
    except BrokenPipeError:  # `| head` closed the pipe early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing may write to the closed pipe at exit


def run_stats(args: argparse.Namespace) -> int:
    import json

    from codeflow.pipeline.db import RunDirError
    from codeflow.pipeline.stats import collect, render

    try:
        stats = collect(args.run_dir, timings=not args.no_timings)
    except (FileNotFoundError, RunDirError) as e:
        error_line("codeflow stats", e)
        return 2
    _print(json.dumps(stats, indent=2) if args.json else render(stats))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from codeflow.pipeline.db import RunDirError
    from codeflow.pipeline.show import show

    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    try:
        if args.html:
            from codeflow.pipeline.show_html import write_pair_page

            _print(
                f"pair {args.pair} -> {write_pair_page(args.run_dir, args.pair, args.html, args.tokenizer)}"
            )
            return 0
        text = show(args.run_dir, args.pair, color=color)
    except (FileNotFoundError, IndexError, RunDirError, IsADirectoryError) as e:
        error_line("codeflow show", e)
        return 2
    _print(text)
    return 0
