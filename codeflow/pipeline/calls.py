"""Model calls through the run's database: a request whose answer is stored is never sent again, and every call
made is counted (calls: answers asked for; requests: the HTTP requests they took, retries included)."""

from __future__ import annotations

from codeflow.pipeline.attempts import call_row
from codeflow.pipeline.backends import LLMAnswer, LLMRequest, request_hash
from codeflow.pipeline.clock import BusyClock
from codeflow.pipeline.db import RunDB


class ModelCalls:
    def __init__(self, db: RunDB, backend, engines: BusyClock):
        self.db = db
        self.backend = backend
        self.engines = engines  # shared with the sandbox: wall time when either is working
        self.clock = BusyClock()  # wall time with at least one model call in flight
        self.calls = 0  # calls made in this run
        self.requests = 0  # HTTP requests those calls sent

    async def ask(self, req: LLMRequest) -> tuple[LLMAnswer, dict | None]:
        """The stored answer if the database has one (call None), else the backend's answer and the row of the
        call made, which the caller stores together with what it makes of the answer, in one transaction."""
        req.request_hash = request_hash(self.backend.name, self.backend.model, self.backend.params, req)
        stored = self.db.cached_answer(req.request_hash)
        if stored is not None:
            return LLMAnswer(stored["text"], stored["finish_reason"], model=stored["model"] or ""), None
        self.calls += 1
        with self.clock.busy(), self.engines.busy():
            answer = await self.backend.answer(req)
        self.requests += answer.requests
        return answer, call_row(self.backend, req, answer)

    async def aclose(self) -> None:
        await self.backend.aclose()
