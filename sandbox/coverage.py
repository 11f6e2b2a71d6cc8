"""Line coverage helpers on the host side: which lines of a solution can run at all.

The job reports the lines that ran (see runner.start_coverage); the denominator is computed here, outside the
job, from the compiled code, so the code cannot change what counts as its own size.
"""

from __future__ import annotations

import types


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
