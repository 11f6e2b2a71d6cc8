"""How the process that ran the tests describes what happened: exceptions, and the outcome of each test.

Used by the judge and by the in-process runner alike, so both report in one shape (see sandbox/verdict.py).
"""

from __future__ import annotations

import os
import traceback
import unittest
from collections.abc import Callable
from typing import Any

TRACEBACK_CHARS = 2000
MESSAGE_CHARS = 300
_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the sandbox's own frames are not shown
# unittest's own frames say nothing about the code under test (unittest hides them from its reports too).
_UNITTEST_DIR = os.path.dirname(unittest.__file__) + os.sep
_type = type
_str = str
_isinstance = isinstance
# Set on an exception that the solution raised in the contestant's process: its frames there, already formatted.
REMOTE_TRACEBACK = "_sbx_remote_traceback"
CONTEXT = {"tests_path": None}  # the file name the tests were compiled under (their frames give failing_line)


def trim_traceback(text: str) -> str:
    if len(text) <= TRACEBACK_CHARS:
        return text
    head = TRACEBACK_CHARS // 4
    return text[:head] + "\n  ...\n" + text[-(TRACEBACK_CHARS - head) :]


def describe_exception(exc: BaseException) -> dict:
    """Type, one-line message, trimmed traceback (the sandbox's frames and run-dir paths removed), failing line."""
    try:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith(_SANDBOX_DIR) and not f.filename.startswith(_UNITTEST_DIR)
        ]
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
        remote = getattr(exc, REMOTE_TRACEBACK, None)
        if _type(remote) is str:
            text += remote
        text += "".join(traceback.format_exception_only(_type(exc), exc))
        text = text.replace(os.getcwd() + os.sep, "")
        message = _str(exc).strip().splitlines()[0] if _str(exc).strip() else ""
        test_frames = [f for f in frames if f.filename == CONTEXT["tests_path"]]
        line = (test_frames[-1].line or "").strip() if test_frames else None
        code = exc.errno if _isinstance(exc, OSError) and _type(exc.errno) is int else None
    except BaseException as err:  # noqa: BLE001 - a hostile __str__ must not break the report
        text, message, line = f"<exception could not be formatted: {_type(err).__name__}>", "", None
        code = None
    return {
        "errno": code,
        "error_type": _type(exc).__name__,
        "message": message[:MESSAGE_CHARS],
        "traceback": trim_traceback(text),
        "failing_line": line,
    }


class Recorder(unittest.TestResult):
    """Records each unittest test's outcome by id, calling `on_outcome(id, outcome, exception)` as each ends.

    `trusted_skips`: the judge's tests are the only thing that can skip there; in-process, a skip raised from the
    code (not declared by a decorator) would let wrong code "pass", so it is an error.
    """

    def __init__(
        self, on_outcome: Callable[[str, str, BaseException | None], None], trusted_skips: bool
    ) -> None:
        super().__init__()
        self.on_outcome = on_outcome
        self.trusted_skips = trusted_skips
        self._current: dict[str, tuple[str, BaseException | None]] = {}

    def _note(self, test: Any, outcome: str, exc: BaseException | None = None) -> None:
        key = test.id()
        if key not in self._current or (outcome != "ok" and self._current[key][0] in ("ok", "skipped")):
            self._current[key] = (outcome, exc)

    def stopTest(self, test: Any) -> None:
        super().stopTest(test)
        outcome, exc = self._current.pop(test.id(), ("ok", None))
        self.on_outcome(test.id(), outcome, exc)

    def addSuccess(self, test: Any) -> None:
        self._note(test, "ok")

    def addFailure(self, test: Any, err: tuple) -> None:
        self._note(test, "failed", err[1])

    def addError(self, test: Any, err: tuple) -> None:
        if test.id() == "" or not hasattr(test, "_testMethodName"):
            self.on_outcome(_str(test), "error", err[1])  # a class or module fixture failed
            return
        self._note(test, "error", err[1])

    def addSkip(self, test: Any, reason: str) -> None:
        method = getattr(test, getattr(test, "_testMethodName", ""), None)
        declared = getattr(test, "__unittest_skip__", False) or getattr(method, "__unittest_skip__", False)
        if self.trusted_skips or declared:
            self._note(test, "skipped")
        else:
            exc = unittest.SkipTest(f"skipped from inside the code: {reason}")
            self._note(test, "error", exc)

    def addExpectedFailure(self, test: Any, err: tuple) -> None:
        self._note(test, "ok")

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._note(test, "failed", AssertionError("unexpected success"))

    def addSubTest(self, test: Any, subtest: Any, err: tuple | None) -> None:
        if err is not None:
            self._note(test, "failed" if issubclass(err[0], test.failureException) else "error", err[1])


def outcome_entry(outcome: str, exc: BaseException | None, failures_so_far: int) -> dict:
    """The report's entry for one test (details only for a failure; no traceback after the first five)."""
    entry: dict = {"outcome": outcome}
    if exc is not None and outcome in ("failed", "error"):
        entry.update(describe_exception(exc))
        if failures_so_far >= 5:
            entry["traceback"] = ""  # keep the report small however many tests fail
    return entry
