"""`python -m codeflow.llm`: send one prompt to a registered backend, to check a setup by hand.

python -m codeflow.llm --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-Coder-7B-Instruct "Say hi"
python -m codeflow.llm --backend transformers --model ./my-checkpoint --completion "def add(a, b):"
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from codeflow.cli import add_options, options_from_args
from codeflow.llm.registry import BACKENDS, LLMOptions, open_chat_model
from codeflow.llm.types import LLMError, LLMResponse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codeflow.llm", description=__doc__.splitlines()[0])
    parser.add_argument("prompt", help="the user message (or, with --completion, the raw text to continue)")
    parser.add_argument("--backend", choices=list(BACKENDS), default="openai", help="(default: openai)")
    parser.add_argument("--completion", action="store_true", help="raw text completion instead of chat")
    parser.add_argument("--max-tokens", type=int, default=256, help="(default: 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="(default: 0.0)")
    parser.add_argument("--stop", action="append", help="a stop string (repeatable)")
    add_options(parser.add_argument_group("the model"), LLMOptions)
    return parser


def ask(backend: str, options: LLMOptions, args: argparse.Namespace) -> LLMResponse:
    model = open_chat_model(backend, options, batch_size=1)
    settings = dict(max_tokens=args.max_tokens, temperature=args.temperature, stop=args.stop)

    async def go() -> LLMResponse:
        try:
            if args.completion:
                return await model.complete(args.prompt, **settings)
            return await model.chat([{"role": "user", "content": args.prompt}], **settings)
        finally:
            await model.aclose()

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required")
    try:
        response = ask(args.backend, options_from_args(LLMOptions, args), args)
    except LLMError as error:
        print(f"error ({error.kind}, {error.attempts} request(s)): {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"python -m codeflow.llm: error: {error}", file=sys.stderr)
        return 2
    print(response.text)
    print(
        f"[model={response.model} finish_reason={response.finish_reason} attempts={response.attempts} "
        f"prompt_tokens={response.usage['prompt_tokens']} completion_tokens={response.usage['completion_tokens']} "
        f"latency={response.latency_s:.3f}s]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
