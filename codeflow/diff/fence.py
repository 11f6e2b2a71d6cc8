"""Find the code inside an LLM answer, keeping its offset so spans can be shifted back into the answer."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL)
_PYTHON = {"python", "py", "python3"}


def extract_code(text: str) -> tuple[str, int]:
    """Return (code, offset) with `text[offset:offset + len(code)] == code`.

    The first ```python fenced block wins, else the first fenced block of any language, else the whole text.
    An unclosed fence runs to the end of the text (truncated answers).
    """
    blocks = list(_FENCE.finditer(text))
    for wanted in (lambda m: m.group("lang").lower() in _PYTHON, lambda m: True):
        for m in blocks:
            if wanted(m):
                return m.group("code"), m.start("code")
    return text, 0
