"""A local Hugging Face model behind the `ChatModel` protocol: concurrent calls are answered in batches.

The model is loaded on the first call (so a resumed run with nothing left to ask never loads it), and every
batch is generated on a worker thread, so the event loop (and the sandbox jobs it drives) keep going.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from codeflow.llm.types import LLMResponse


@dataclass(eq=False)  # queued calls are told apart by identity
class _Pending:
    kind: str  # "chat" | "complete"
    content: Any  # the messages, or the raw prompt
    options: tuple  # (max_tokens, temperature, stop): calls batch together only when these agree
    seed: int | None
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]


class LocalChatModel:
    """Calls that arrive together are generated in batches of up to `batch_size` with one
    `codeflow.llm.TransformersBackend`. A batch is sampled with the seed of its first call (torch seeds one
    generator per batch); at temperature 0 the seed does not matter."""

    backend = "transformers"
    sends_requests = False

    def __init__(
        self, model: str, *, batch_size: int = 16, device: str | None = None, dtype: str = "auto", loaded=None
    ):
        self.model = str(model)
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self._backend = loaded  # a TransformersBackend (or anything with its chat/generate), built lazily
        self._waiting: list[_Pending] = []
        self._draining = False

    @property
    def loaded(self) -> Any:
        if self._backend is None:
            from codeflow.llm.transformers_backend import TransformersBackend

            self._backend = TransformersBackend(
                self.model, batch_size=self.batch_size, device=self.device, dtype=self.dtype
            )
        return self._backend

    async def chat(
        self,
        messages: list[dict],
        *,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> LLMResponse:
        return await self._enqueue("chat", messages, max_tokens, temperature, seed, stop)

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> LLMResponse:
        return await self._enqueue("complete", prompt, max_tokens, temperature, seed, stop)

    async def aclose(self) -> None:
        return None

    async def _enqueue(self, kind, content, max_tokens, temperature, seed, stop) -> LLMResponse:
        loop = asyncio.get_running_loop()
        pending = _Pending(
            kind, content, (max_tokens, temperature, tuple(stop or ())), seed, loop.create_future()
        )
        self._waiting.append(pending)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await pending.future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let every caller that is about to ask join this batch
                first = self._waiting[0]
                same = [p for p in self._waiting if (p.kind, p.options) == (first.kind, first.options)]
                batch = same[: self.batch_size]
                self._waiting = [p for p in self._waiting if p not in batch]
                try:
                    answers = await asyncio.to_thread(self._generate, batch)
                except Exception as e:  # noqa: BLE001 - fail this batch's calls, not every caller
                    for p in batch:
                        p.future.set_exception(e)
                    continue
                for p, answer in zip(batch, answers, strict=True):
                    p.future.set_result(answer)
        finally:
            self._draining = False

    def _generate(self, batch: list[_Pending]) -> list[LLMResponse]:
        max_tokens, temperature, stop = batch[0].options
        options = dict(max_new_tokens=max_tokens, temperature=temperature, stop=list(stop) or None)
        backend = self.loaded
        if batch[0].kind == "chat":
            return backend.chat([p.content for p in batch], seed=batch[0].seed, **options)
        return backend.generate([p.content for p in batch], seed=batch[0].seed, **options)
