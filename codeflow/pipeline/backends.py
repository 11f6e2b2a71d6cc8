"""The pipeline's view of a model: `await backend.answer(request)` gives one answer, or the error after retries.

`openai` and `transformers` wrap the clients in `codeflow.llm`; `simulate` answers offline from a reference
solution (see simulate.py). Each problem awaits its own answers, so one slow answer holds up only its problem.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from codeflow.pipeline import simulate
from codeflow.pipeline.problems import Problem


@dataclass
class LLMRequest:
    stage: str  # generate | refine | judge
    problem_id: str
    iteration: int
    messages: list[dict]
    # What the simulate backend reads instead of the prose: the code being refined, the pair being judged.
    context: dict = field(default_factory=dict)
    request_hash: str = ""


@dataclass
class LLMAnswer:
    text: str | None
    finish_reason: str | None = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    latency_s: float = 0.0
    attempts: int = 1
    error_kind: str | None = None
    error_message: str | None = None


def request_hash(backend: str, model: str, params: dict, req: LLMRequest) -> str:
    """The cache key of a request: everything that decides its answer."""
    key = {
        "backend": backend,
        "model": model,
        "params": params,
        "stage": req.stage,
        "problem": req.problem_id,
        "iteration": req.iteration,
        "messages": req.messages,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _from_response(r) -> LLMAnswer:
    return LLMAnswer(
        r.text,
        r.finish_reason,
        r.usage.get("prompt_tokens", 0),
        r.usage.get("completion_tokens", 0),
        r.model,
        r.latency_s,
        r.attempts,
    )


class OpenAIBackend:
    """Each `answer` is one chat call; the client bounds the calls in flight (`--concurrency`) and their rate."""

    name = "openai"

    def __init__(self, client, max_tokens: int, temperature: float, seed: int):
        self.client = client
        self.model = client.model
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}

    async def answer(self, req: LLMRequest) -> LLMAnswer:
        from codeflow.llm import LLMError

        try:
            return _from_response(await self.client.chat(req.messages, **self.params))
        except LLMError as e:
            return LLMAnswer(None, None, attempts=e.attempts, error_kind=e.kind, error_message=str(e))

    async def aclose(self) -> None:
        await self.client.aclose()


class TransformersBackend:
    """Requests that arrive together are answered in batches of the model's batch size, on a worker thread
    so the event loop (and the sandbox) keep going while the model generates."""

    name = "transformers"

    def __init__(self, backend, max_tokens: int, temperature: float, seed: int):
        self.backend = backend
        self.model = str(getattr(backend, "model_name", None) or getattr(backend, "model", ""))
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        self.batch_size = int(getattr(backend, "batch_size", 16) or 16)
        self._waiting: list[tuple[LLMRequest, asyncio.Future]] = []
        self._draining = False

    async def answer(self, req: LLMRequest) -> LLMAnswer:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((req, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let every problem that is about to ask join this batch
                batch, self._waiting = self._waiting[: self.batch_size], self._waiting[self.batch_size :]
                try:
                    answers = await asyncio.to_thread(
                        self.backend.chat,
                        [r.messages for r, _ in batch],
                        max_new_tokens=self.params["max_tokens"],
                        temperature=self.params["temperature"],
                        seed=self.params["seed"],
                    )
                except Exception as e:  # noqa: BLE001 - fail the batch's requests, not the whole build
                    for _, future in batch:
                        future.set_exception(e)
                    continue
                for (_, future), r in zip(batch, answers, strict=True):
                    future.set_result(_from_response(r))
        finally:
            self._draining = False

    async def aclose(self) -> None:
        return None


class SimulateBackend:
    """Offline answers: a bugged reference solution first, then one bug fixed per refinement.

    `check_fails([(problem, code), ...])` (async) runs candidate first answers in the sandbox and says which
    fail; it is how a bug plan is verified before it is used.
    """

    name = "simulate"
    model = "simulate"

    def __init__(
        self,
        problems: dict[str, Problem],
        seed: int,
        check_fails: Callable[[list[tuple[Problem, str]]], Awaitable[list[bool]]],
    ):
        self.problems = problems
        self.seed = seed
        self.params = {"seed": seed}
        self.check_fails = check_fails
        self._plan_cache: dict[str, list[list[simulate.Mutation]]] = {}

    async def answer(self, req: LLMRequest) -> LLMAnswer:
        if req.stage == "generate":
            text = simulate.answer_text(await self._first_answer(self.problems[req.problem_id]))
        elif req.stage == "refine":
            text = simulate.answer_text(self._refined(req))
        else:
            text = self._judge(req)
        return LLMAnswer(text, "stop", model=self.model)

    async def aclose(self) -> None:
        return None

    def _plans(self, problem: Problem) -> list[list[simulate.Mutation]]:
        # pure in (solution, seed, id), and asked again at every refinement of the problem
        if problem.id not in self._plan_cache:
            self._plan_cache[problem.id] = simulate.mutation_plans(
                problem.solution or "", self.seed, problem.id
            )
        return self._plan_cache[problem.id]

    async def _first_answer(self, problem: Problem) -> str:
        """The first plan whose fully bugged version fails in the sandbox; the reference when the plan is to
        answer correctly at once or no plan fails."""
        for plan in self._plans(problem):
            if not plan:
                break
            code = simulate.version(problem.solution, plan, 0)
            if (await self.check_fails([(problem, code)]))[0]:
                return code
        return problem.solution

    def _refined(self, req: LLMRequest) -> str:
        """Find which plan and how many fixes produced the code under refinement, and fix one more bug."""
        problem = self.problems[req.problem_id]
        code = req.context.get("code", "")
        for plan in self._plans(problem):
            for fixed in range(len(plan)):
                if simulate.version(problem.solution, plan, fixed) == code:
                    return simulate.version(problem.solution, plan, fixed + 1)
        return problem.solution  # code this backend never wrote: answer with the reference

    @staticmethod
    def _judge(req: LLMRequest) -> str:
        import ast

        try:
            same = ast.dump(ast.parse(req.context["rejected"])) == ast.dump(ast.parse(req.context["chosen"]))
        except SyntaxError:
            same = False
        return "COSMETIC" if same else "FUNCTIONAL"
