"""`focal-dpo eval`: pass@k of a model on HumanEval or a user's benchmark file, scored in the sandbox.

This module only declares the command line; the work (and torch, transformers, the sandbox) is imported when
the command runs.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="pass@k of a model on HumanEval or a FILE.jsonl benchmark, with error analysis",
        description=(
            "Generate answers with a local model or an OpenAI-compatible server, score them in the sandbox and "
            "write OUT/results.jsonl and OUT/summary.json. Rerunning the same command resumes. "
            "With --compare A/summary.json B/summary.json, print the two runs side by side instead."
        ),
    )
    p.add_argument("--model", help="model path (e.g. runs/x/final) or hub name; the served name for openai")
    p.add_argument("--benchmark", default="humaneval", help="`humaneval` or a FILE.jsonl (see docs/eval.md)")
    p.add_argument("--backend", choices=["transformers", "openai"], default="transformers")
    p.add_argument("--base-url", default="http://localhost:8000/v1", help="openai backend: server URL")
    p.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="openai backend: env variable with the key"
    )
    p.add_argument("--concurrency", type=int, default=8, help="openai backend: requests in flight")
    p.add_argument(
        "--chat", action="store_true", help="chat-style prompting; code is taken from the fenced answer"
    )
    p.add_argument(
        "--n", type=int, default=1, help="samples per problem (pass@k for k in 1, 10, 100 up to n)"
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    p.add_argument("--max-new-tokens", type=int, default=768)
    p.add_argument("--batch-size", type=int, default=16, help="samples generated and scored per batch")
    p.add_argument("--limit", type=int, help="only the first N problems (smoke tests)")
    p.add_argument("--out", help="output directory (default runs/eval/BENCHMARK/MODEL)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per sandbox run")
    p.add_argument("--memory-mb", type=int, default=2048, help="memory limit per sandbox run")
    p.add_argument("--workers", type=int, help="sandbox workers (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed when temperature > 0")
    p.add_argument("--device", help="transformers backend: cuda, cpu, ... (default: best available)")
    p.add_argument("--dtype", default="auto", help="transformers backend: auto, bfloat16, float16, float32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="print A/summary.json and B/summary.json side by side"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from focal_dpo.eval.cli import run

    return run(args)
