"""`focal-dpo eval`: pass@k of a model on HumanEval or a user's benchmark file, scored in the sandbox.

This module only declares the command line; the work (and torch, transformers, the sandbox) is imported when
the command runs. The model options are `codeflow.llm.LLMOptions`, the same flags `codeflow build` has.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from codeflow.cli import add_options, one_line_errors
    from codeflow.llm.registry import BACKENDS, LLMOptions, backend_summaries

    p = subparsers.add_parser(
        "eval",
        help="pass@k of a model on HumanEval or a FILE.jsonl benchmark, with error analysis",
        description=(
            "Generate answers with a local model or an OpenAI-compatible server, score them in the sandbox and "
            "write OUT/results.jsonl and OUT/summary.json. Rerunning the same command resumes. "
            "With --compare A B (two run directories or their summary.json), print the two runs side by side."
        ),
    )
    p.add_argument(
        "--benchmark",
        default="humaneval",
        help="`humaneval` or a FILE.jsonl in the docs/eval.md schema (default: humaneval)",
    )
    p.add_argument(
        "--backend",
        choices=list(BACKENDS),
        default="transformers",
        help="who answers: " + backend_summaries() + " (default: transformers)",
    )
    p.add_argument(
        "--chat", action="store_true", help="chat-style prompting; code is taken from the fenced answer"
    )
    p.add_argument(
        "--n",
        type=int,
        default=1,
        help="samples per problem (pass@k for k in 1, 10, 100 up to n) (default: 1)",
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0.0)")
    p.add_argument("--max-new-tokens", type=int, default=768, help="answer length limit (default: 768)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="samples generated and scored per batch (default: 16)"
    )
    p.add_argument("--limit", type=int, help="only the first N problems (smoke tests)")
    p.add_argument("--out", help="output directory (default: runs/eval/BENCHMARK/MODEL)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per sandbox run (default: 10.0)")
    p.add_argument(
        "--memory-mb", type=int, default=2048, help="memory limit per sandbox run, in MB (default: 2048)"
    )
    p.add_argument("--workers", type=int, help="sandbox workers (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed when temperature > 0 (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (ours and transformers')")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="print two runs side by side: their directories or their summary.json files",
    )
    add_options(p.add_argument_group("the model (--backend openai or transformers)"), LLMOptions)
    p.set_defaults(func=_run)
    one_line_errors(p, "focal-dpo eval")


def _run(args: argparse.Namespace) -> int:
    from focal_dpo.eval.cli import run

    return run(args)
