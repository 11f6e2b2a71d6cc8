"""A problem's trajectory: its attempts as stored, the next request it needs, and the attempt an answer makes.

Pure functions over plain rows of the `attempts` table, so the generation loop and a resumed run read the same
state the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from codeflow.pipeline import prompts
from codeflow.pipeline.backends import LLMAnswer, LLMRequest
from codeflow.pipeline.db import ATTEMPT_COLUMNS, RunDB
from codeflow.pipeline.problems import Problem


@dataclass
class ProblemState:
    """What the database says about one problem's trajectory so far."""

    attempts: list[dict]  # rows of the attempts table, by iteration

    @property
    def next_iteration(self) -> int:
        return len(self.attempts)

    @property
    def last(self) -> dict | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def frozen_tests(self) -> str | list[dict] | None:
        for a in self.attempts:
            if a["tests"] is not None:
                return json.loads(a["tests"])
        return None

    @property
    def finished(self) -> bool:
        last = self.last
        return last is not None and last["status"] == "passed"

    @property
    def unexecuted(self) -> bool:
        last = self.last
        return last is not None and last["answer_kind"] == "code" and last["status"] is None


def load_states(db: RunDB) -> dict[str, ProblemState]:
    return {pid: ProblemState(rows) for pid, rows in db.attempts().items()}


def next_request(problem: Problem, state: ProblemState) -> LLMRequest:
    """Generation for the first attempt (or while no tests exist yet), refinement after a failure."""
    it = state.next_iteration
    tests = problem.tests or state.frozen_tests
    last = state.last
    if last is None:
        return LLMRequest("generate", problem.id, 0, prompts.generation_messages(problem))
    feedback = prompts.feedback_text(
        last["answer_kind"],
        last["status"],
        last["error_type"],
        last["failing_test"],
        last["message"],
        last["traceback"],
    )
    code = next((a["code"] for a in reversed(state.attempts) if a["code"]), "")
    if tests is None:  # the model has not yet given a usable test file: ask for both files again
        messages = prompts.generation_messages(problem)
        messages[-1] = {"role": "user", "content": messages[-1]["content"] + "\n\n" + feedback}
        return LLMRequest("generate", problem.id, it, messages)
    return LLMRequest(
        "refine",
        problem.id,
        it,
        prompts.refinement_messages(problem, code, tests, feedback),
        context={"code": code},
    )


def attempt_from_answer(problem: Problem, state: ProblemState, req: LLMRequest, answer: LLMAnswer) -> dict:
    """The attempt row an answer makes. Truncated, code-less and test-editing answers are failed attempts
    that never reach the sandbox; an answer that edits frozen tests is recorded, never accepted."""
    frozen = problem.tests or state.frozen_tests
    row = dict.fromkeys(ATTEMPT_COLUMNS) | {
        "problem_id": problem.id,
        "iteration": req.iteration,
        "request_hash": req.request_hash,
        "tests": json.dumps(frozen) if frozen is not None else None,
    }
    parsed = prompts.parse_answer(answer.text or "")
    row["code"] = parsed.solution
    if answer.finish_reason == "length":
        row.update(answer_kind="truncated", status="truncated")
    elif parsed.solution is None or not parsed.solution.strip():
        row.update(answer_kind="no_code", status="no_code")
    elif frozen is None and parsed.tests is None:
        row.update(answer_kind="no_tests", status="no_tests")
    elif frozen is None:
        row.update(answer_kind="code", tests=json.dumps(parsed.tests))
    elif (
        parsed.tests is not None
        and not isinstance(frozen, list)
        and not problem.tests
        and not prompts.same_tests(parsed.tests, frozen)
    ):
        row.update(
            answer_kind="tests_edited",
            status="tests_edited",
            message="the answer changed the frozen tests; attempt rejected",
        )
    else:
        row["answer_kind"] = "code"
    return row


def call_row(backend, req: LLMRequest, a: LLMAnswer) -> dict:
    """The `llm_calls` row of one call made: the request, and its answer or its error."""
    return {
        "request_hash": req.request_hash,
        "stage": req.stage,
        "problem_id": req.problem_id,
        "iteration": req.iteration,
        "request": json.dumps({"messages": req.messages, "params": backend.params, "model": backend.model}),
        "text": a.text,
        "finish_reason": a.finish_reason,
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "model": a.model,
        "latency_s": a.latency_s,
        "requests": a.requests,
        "error_kind": a.error_kind,
        "error_message": a.error_message,
        "created": time.time(),
    }
