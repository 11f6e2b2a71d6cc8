"""`python -m codeflow.llm`: send one prompt to an endpoint or a local model, to check a setup by hand.

python -m codeflow.llm --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-Coder-7B-Instruct "Say hi"
python -m codeflow.llm --transformers ./my-checkpoint --completion "def add(a, b):"
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from codeflow.llm.openai_client import TOKEN_PARAMS, OpenAIClient
from codeflow.llm.types import LLMError, LLMResponse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codeflow.llm", description=__doc__.splitlines()[0])
    parser.add_argument("prompt", help="the user message (or, with --completion, the raw text to continue)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    where.add_argument("--transformers", metavar="MODEL", help="a local Hugging Face model directory or name")
    parser.add_argument("--model", help="the model name the server expects (with --base-url)")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key"
    )
    parser.add_argument("--completion", action="store_true", help="raw text completion instead of chat")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--stop", action="append", help="a stop string (repeatable)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP request")
    parser.add_argument("--max-retries", type=int, default=6)
    parser.add_argument("--token-param", choices=TOKEN_PARAMS, default="max_tokens")
    return parser


def ask_server(args: argparse.Namespace) -> tuple[LLMResponse, dict[str, int]]:
    client = OpenAIClient(
        args.base_url,
        args.model,
        api_key_env=args.api_key_env,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
        token_param=args.token_param,
    )
    options = dict(max_tokens=args.max_tokens, temperature=args.temperature, stop=args.stop)

    async def go() -> LLMResponse:
        async with client:
            if args.completion:
                return await client.complete(args.prompt, **options)
            return await client.chat([{"role": "user", "content": args.prompt}], **options)

    response = asyncio.run(go())
    return response, client.usage_totals()


def ask_local(args: argparse.Namespace) -> LLMResponse:
    from codeflow.llm.transformers_backend import TransformersBackend

    backend = TransformersBackend(args.transformers, batch_size=1)
    options = dict(max_new_tokens=args.max_tokens, temperature=args.temperature, stop=args.stop)
    if args.completion:
        return backend.generate([args.prompt], **options)[0]
    return backend.chat([[{"role": "user", "content": args.prompt}]], **options)[0]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.base_url and not args.model:
        parser.error("--base-url needs --model")
    try:
        response = ask_server(args)[0] if args.base_url else ask_local(args)
    except LLMError as error:
        print(f"error ({error.kind}, {error.attempts} request(s)): {error}", file=sys.stderr)
        return 1
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
