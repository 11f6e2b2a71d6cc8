"""The pipeline's view of a model: `await backend.answer(request)` gives one answer, or the error after retries.

`ChatBackend` serves any model of the `codeflow.llm` registry (openai, transformers, ...); `simulate` answers
offline from a reference solution (see simulate.py). Each problem awaits its own answers, so one slow answer
holds up only its problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from codeflow.llm.types import ChatModel, LLMError
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
    requests: int = 0  # HTTP requests the call sent, retries included (0 for backends that send none)
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


class ChatBackend:
    """Any `codeflow.llm` ChatModel (openai, transformers, ...): each `answer` is one chat call; the model
    bounds its calls in flight (an HTTP client) or batches those that arrive together (a local model)."""

    def __init__(self, chat_model: ChatModel, max_tokens: int, temperature: float, seed: int):
        self.chat_model = chat_model
        self.name = chat_model.backend
        self.model = chat_model.model
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}

    async def answer(self, req: LLMRequest) -> LLMAnswer:
        try:
            r = await self.chat_model.chat(req.messages, **self.params)
        except LLMError as e:
            return LLMAnswer(
                None, None, requests=self._requests(e.attempts), error_kind=e.kind, error_message=str(e)
            )
        return LLMAnswer(
            r.text,
            r.finish_reason,
            r.usage.get("prompt_tokens", 0),
            r.usage.get("completion_tokens", 0),
            r.model,
            r.latency_s,
            self._requests(r.attempts),
        )

    def _requests(self, attempts: int) -> int:
        return attempts if self.chat_model.sends_requests else 0

    async def aclose(self) -> None:
        await self.chat_model.aclose()


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
