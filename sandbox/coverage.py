"""Line coverage: which lines of a solution can run (computed by the host) and which ran (recorded in the job).

The job reports the lines that ran; the denominator is computed on the host, outside the job, from the compiled
code, so the code cannot change what counts as its own size. Coverage never changes a verdict.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: set on function code objects
_settrace = sys.settrace


def executable_lines(code: str, filename: str = "solution.py") -> list[int] | None:
    """Line numbers that carry bytecode in `code` or any function, class, lambda or comprehension inside it.

    The same set CPython's line events can report (`co_lines()`), minus line 0 (the module's own start-up
    instruction). Docstrings, comments and blank lines are not in it. None when the code does not compile.
    """
    try:
        compiled = compile(code, filename, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    lines: set[int] = set()
    stack = [compiled]
    while stack:
        co = stack.pop()
        lines.update(line for _, _, line in co.co_lines() if line is not None and line > 0)
        stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return sorted(lines)


def _line_tracer(unseen: set[int], record: Any) -> Any:
    """The local tracer of one solution code object: records each line, and once every line of the code has
    been seen, turns line events off for the frame (hot loops then run at almost full speed)."""

    def trace_lines(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            line = frame.f_lineno
            record(line)
            unseen.discard(line)
            if not unseen:
                frame.f_trace_lines = False
        return trace_lines

    return trace_lines


def start_coverage(code_path: str) -> tuple[Any, set[int]]:
    """Install a line tracer for this thread and threads started later; (the tracer, the lines it records).

    Only frames whose code was compiled from `code_path` (the solution) get a line tracer; every other frame
    costs one call event. A code object whose lines have all been seen gets no line tracer any more: a
    function's first line is left out of that test, because its own frame never reports its `def` line (the
    enclosing frame, which ran the `def`, did). Code that compiles other text under the solution's file name, or
    reaches into the set, can inflate its own coverage: that matters to a coverage filter only.
    """
    import threading  # only with coverage: the fork servers do not import it (its after-fork hook is costly)

    covered: set[int] = set()
    record = covered.add
    tracers: dict[int, tuple[Any, set[int], Any]] = {}  # id(code) -> (code, its unseen lines, its tracer)

    def trace_calls(frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_filename != code_path:
            return None
        entry = tracers.get(id(code))
        if entry is None or entry[0] is not code:
            unseen = {line for _, _, line in code.co_lines() if line is not None and line > 0}
            if code.co_flags & _CO_NEWLOCALS:  # a function, lambda or comprehension, not a module
                unseen.discard(code.co_firstlineno)
            entry = tracers[id(code)] = (code, unseen, _line_tracer(unseen, record))
        return entry[2] if entry[1] else None

    threading.settrace(trace_calls)
    _settrace(trace_calls)
    return trace_calls, covered


def stop_coverage(covered: set[int]) -> list[int] | None:
    """Remove the tracers and return the covered lines as sorted ints (the code may have added junk)."""
    _settrace(None)
    threading = sys.modules.get("threading")
    if threading is not None:
        threading.settrace(None)
    try:
        return sorted(v for v in covered if type(v) is int)
    except BaseException:  # noqa: BLE001 - e.g. a set made huge by the code: no coverage, still a report
        return None
