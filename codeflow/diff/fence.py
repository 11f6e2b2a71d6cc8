"""Find the code inside an LLM answer, keeping its offset so spans can be shifted back into the answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

# An opening fence: three or more backticks (or tildes) at the start of a line, then an optional language.
_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n", re.MULTILINE)
PYTHON_LANGUAGES = frozenset({"python", "py", "python3", "py3"})


@dataclass
class FencedBlock:
    language: str  # lower case; "" when the fence names none
    start: int  # offset of the code's first character in the answer
    end: int  # offset just past the code (the line break before the closing fence included)
    fence_start: int  # offset of the opening fence line
    fence_end: int  # offset just past the closing fence (the end of the text when there is none)

    @property
    def is_python(self) -> bool:
        """Tagged as Python, or not tagged at all."""
        return not self.language or self.language in PYTHON_LANGUAGES


def fenced_blocks(text: str) -> list[FencedBlock]:
    """Every fenced block of a Markdown answer, in order. An unclosed fence runs to the end (truncated answers).

    A fence opens at the start of a line and closes with the same character, at least as long, alone on its
    line, so backticks inside the code (`return "```"`) do not end it.
    """
    blocks: list[FencedBlock] = []
    position = 0
    while (opening := _OPEN.search(text, position)) is not None:
        fence = opening.group("fence")
        # the closing fence uses the same character, at least as long, alone on its line
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        close = closing.search(text, opening.end())
        end = close.start() if close else len(text)
        blocks.append(
            FencedBlock(
                opening.group("lang").lower(),
                opening.end(),
                end,
                opening.start(),
                close.end() if close else len(text),
            )
        )
        if close is None:
            break
        position = close.end()
    return blocks


def extract_code(text: str) -> tuple[str, int]:
    """Return (code, offset) with `text[offset:offset + len(code)] == code`.

    The first ```python fenced block wins, else the first fenced block of any language, else the whole text.
    An unclosed fence runs to the end of the text (truncated answers).
    """
    blocks = fenced_blocks(text)
    chosen = next((b for b in blocks if b.language in PYTHON_LANGUAGES), blocks[0] if blocks else None)
    if chosen is None:
        return text, 0
    return text[chosen.start : chosen.end], chosen.start
