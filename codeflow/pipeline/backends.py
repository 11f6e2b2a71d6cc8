"""The pipeline's view of a model: a batch of requests in, one answer or error per request out, as they arrive.

`openai` and `transformers` wrap the clients in `codeflow.llm`; `simulate` answers offline from a reference
solution (see simulate.py). Every backend reports each answer through a callback as soon as it has it, so the
build can store it before asking for the next, and a kill loses only what was in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
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


OnAnswer = Callable[[LLMRequest, LLMAnswer], None]


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


class OpenAIBackend:
    name = "openai"

    def __init__(self, client, max_tokens: int, temperature: float, seed: int):
        self.client = client
        self.model = client.model
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}

    def complete(self, requests: list[LLMRequest], on_answer: OnAnswer) -> None:
        asyncio.run(self._complete(requests, on_answer))

    async def _complete(self, requests: list[LLMRequest], on_answer: OnAnswer) -> None:
        from codeflow.llm import LLMError

        async def one(req: LLMRequest) -> tuple[LLMRequest, LLMAnswer]:
            try:
                r = await self.client.chat(req.messages, **self.params)
            except LLMError as e:
                return req, LLMAnswer(
                    None, None, attempts=e.attempts, error_kind=e.kind, error_message=str(e)
                )
            return req, LLMAnswer(
                r.text,
                r.finish_reason,
                r.usage.get("prompt_tokens", 0),
                r.usage.get("completion_tokens", 0),
                r.model,
                r.latency_s,
                r.attempts,
            )

        try:
            for done in asyncio.as_completed([one(r) for r in requests]):
                on_answer(*(await done))  # stored at once, before the next answer is awaited
        finally:
            await self.client.aclose()


class TransformersBackend:
    name = "transformers"

    def __init__(self, backend, max_tokens: int, temperature: float, seed: int):
        self.backend = backend
        self.model = str(getattr(backend, "model_name", None) or getattr(backend, "model", ""))
        self.max_tokens, self.temperature = max_tokens, temperature
        self.params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        self.batch_size = int(getattr(backend, "batch_size", 16) or 16)

    def complete(self, requests: list[LLMRequest], on_answer: OnAnswer) -> None:
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            answers = self.backend.chat(
                [r.messages for r in batch],
                max_new_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=self.params["seed"],
            )
            for req, r in zip(batch, answers, strict=True):
                on_answer(
                    req,
                    LLMAnswer(
                        r.text,
                        r.finish_reason,
                        r.usage.get("prompt_tokens", 0),
                        r.usage.get("completion_tokens", 0),
                        r.model,
                        r.latency_s,
                        r.attempts,
                    ),
                )


class SimulateBackend:
    """Offline answers: a bugged reference solution first, then one bug fixed per refinement.

    `check_fails(codes_and_problems)` runs candidate first answers in the sandbox and says which fail; it is
    how a bug plan is verified before it is used.
    """

    name = "simulate"
    model = "simulate"

    def __init__(
        self,
        problems: dict[str, Problem],
        seed: int,
        check_fails: Callable[[list[tuple[Problem, str]]], list[bool]],
    ):
        self.problems = problems
        self.seed = seed
        self.params = {"seed": seed}
        self.check_fails = check_fails
        self._plan_cache: dict[str, list[list[simulate.Mutation]]] = {}

    def complete(self, requests: list[LLMRequest], on_answer: OnAnswer) -> None:
        generate = [r for r in requests if r.stage == "generate"]
        for req, code in zip(generate, self._first_answers(generate), strict=True):
            on_answer(req, self._answer(simulate.answer_text(code)))
        for req in requests:
            if req.stage == "refine":
                on_answer(req, self._answer(simulate.answer_text(self._refined(req))))
            elif req.stage == "judge":
                on_answer(req, self._answer(self._judge(req)))

    def _answer(self, text: str) -> LLMAnswer:
        return LLMAnswer(text, "stop", model=self.model)

    def _plans(self, problem: Problem) -> list[list[simulate.Mutation]]:
        # pure in (solution, seed, id), and asked again at every refinement of the problem
        if problem.id not in self._plan_cache:
            self._plan_cache[problem.id] = simulate.mutation_plans(
                problem.solution or "", self.seed, problem.id
            )
        return self._plan_cache[problem.id]

    def _first_answers(self, requests: list[LLMRequest]) -> list[str]:
        """Per request: the first plan whose fully bugged version fails in the sandbox, tried in rounds so that
        each round is one sandbox batch. A problem with no failing plan is answered with its reference."""
        problems = [self.problems[r.problem_id] for r in requests]
        plans = [self._plans(p) for p in problems]
        answers: list[str | None] = [None] * len(requests)
        for i, (p, ps) in enumerate(zip(problems, plans, strict=True)):
            if ps == [[]]:
                answers[i] = p.solution
        for round_index in range(simulate.PLAN_TRIES):
            todo = [i for i in range(len(requests)) if answers[i] is None and round_index < len(plans[i])]
            if not todo:
                break
            candidates = [simulate.version(problems[i].solution, plans[i][round_index], 0) for i in todo]
            for i, code, failed in zip(
                todo, candidates, self.check_fails([(problems[i], c) for c in candidates]), strict=True
            ):
                if failed:
                    answers[i] = code
        return [a if a is not None else p.solution for a, p in zip(answers, problems, strict=True)]

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
