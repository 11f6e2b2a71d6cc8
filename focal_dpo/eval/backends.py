"""The generation side of an eval over any `codeflow.llm` ChatModel: rendered prompts in, raw answers out.

One event loop serves every batch of a run. A failed call (the model's LLMError after its retries) comes back
in place of its answer; the eval loop leaves that sample unscored so a rerun tries it again.
"""

from __future__ import annotations

import asyncio
from typing import Any

Answers = list["str | Exception"]


class ModelGenerator:
    """`generate(prompts)` -> answers, through `model.chat` (a user message each) or `model.complete`.

    With temperature > 0 every request gets its own seed (`seed`, `seed + 1`, ... in order), so the samples of
    one problem differ on servers that honour `seed`; at temperature 0 no seed is sent.
    """

    def __init__(
        self,
        model: Any,
        *,
        chat: bool,
        stop: list[str] | None = None,
        max_new_tokens: int = 768,
        temperature: float = 0.0,
        seed: int = 0,
    ):
        self.model = model
        self.chat = chat
        self.stop = list(stop or []) or None
        self.options: dict[str, Any] = dict(max_tokens=max_new_tokens, temperature=temperature)
        self.seed = seed if temperature > 0 else None
        self.requests_made = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, prompts: list[str]) -> Answers:
        seeds = [
            None if self.seed is None else self.seed + self.requests_made + i for i in range(len(prompts))
        ]
        self.requests_made += len(prompts)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        async def answer_all() -> list[Any]:
            return await asyncio.gather(*(self._one(p, s) for p, s in zip(prompts, seeds, strict=True)))

        return self._loop.run_until_complete(answer_all())

    async def _one(self, prompt: str, seed: int | None) -> Any:
        from codeflow.llm.types import LLMError

        try:
            if self.chat:
                answer = await self.model.chat(
                    [{"role": "user", "content": prompt}], seed=seed, **self.options
                )
            else:
                answer = await self.model.complete(prompt, seed=seed, stop=self.stop, **self.options)
        except LLMError as e:  # failed for good after the model's retries: left for a rerun
            return e
        return answer.text

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self.model.aclose())
            self._loop.close()
            self._loop = None
