"""Generators over `codeflow.llm`: each turns a list of rendered prompts into a list of raw answers.

A failed request (the OpenAI client's LLMError after its retries) comes back in place of its answer; the eval
loop leaves that sample unscored so a rerun tries it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Answers = list["str | Exception"]


def transformers_generator(
    model: str,
    *,
    chat: bool,
    stop: list[str] | None = None,
    max_new_tokens: int = 768,
    temperature: float = 0.0,
    batch_size: int = 16,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "auto",
) -> Callable[[list[str]], Answers]:
    """Local batched generation with Hugging Face transformers (greedy at temperature 0)."""
    backend = None
    calls = 0

    def generate(prompts: list[str]) -> Answers:
        nonlocal backend, calls
        # Loaded on first use: a resumed run with nothing left to do never loads the model.
        if backend is None:
            from codeflow.llm import TransformersBackend

            backend = TransformersBackend(model, batch_size=batch_size, device=device, dtype=dtype)
        calls += 1
        # A new seed per call, so that samples of the same problem in different batches differ when sampling.
        options: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + calls
        )
        if chat:
            responses = backend.chat([[{"role": "user", "content": p}] for p in prompts], **options)
        else:
            responses = backend.generate(prompts, stop=stop or None, **options)
        return [r.text for r in responses]

    return generate


def openai_generator(
    model: str,
    *,
    base_url: str,
    api_key_env: str = "OPENAI_API_KEY",
    chat: bool,
    stop: list[str] | None = None,
    max_new_tokens: int = 768,
    temperature: float = 0.0,
    concurrency: int = 8,
    seed: int | None = None,
) -> Callable[[list[str]], Answers]:
    """An OpenAI-compatible server (vLLM, SGLang, OpenAI, ...) through the pipeline's async client."""
    from codeflow.llm import LLMError, OpenAIClient

    client = OpenAIClient(base_url, model, api_key_env=api_key_env, concurrency=concurrency)
    requests_made = 0

    async def one(prompt: str, request_seed: int | None) -> Any:
        options: dict[str, Any] = dict(max_tokens=max_new_tokens, temperature=temperature, seed=request_seed)
        try:
            if chat:
                return (await client.chat([{"role": "user", "content": prompt}], **options)).text
            return (await client.complete(prompt, stop=stop or None, **options)).text
        except LLMError as e:  # failed for good after the client's retries: left for a rerun
            return e

    def generate(prompts: list[str]) -> Answers:
        nonlocal requests_made
        # One seed per request: servers that honour `seed` (vLLM) would otherwise return n identical samples.
        seeds = [None if seed is None else seed + requests_made + i for i in range(len(prompts))]
        requests_made += len(prompts)

        async def answer_all() -> list[Any]:
            return await asyncio.gather(*(one(p, s) for p, s in zip(prompts, seeds, strict=True)))

        # The client rebuilds its connection pool for each new event loop, so one asyncio.run per batch is fine.
        return asyncio.run(answer_all())

    return generate
