"""From a problem and a model's raw answer to the program and the sandbox jobs that test it."""

from __future__ import annotations

import ast
import re
from functools import lru_cache

from focal_dpo.eval.problems import Problem

# The Codex stop set: a completion of a function body ends where the next top-level statement begins.
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")

CHAT_CODE_INSTRUCTION = (
    "Complete the following Python function. Answer with the whole function, imports included, "
    "in one ```python code block.\n\n```python\n{prompt}```\n"
)


@lru_cache(maxsize=4096)
def prompt_is_code(prompt: str) -> bool:
    """True for a code prefix (HumanEval's signature + docstring), False for an instruction in prose."""
    tree = None
    # A bare signature ("def add(a, b):\n") is a code prefix too: it only lacks the body the model writes.
    for candidate in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            tree = ast.parse(candidate)
            break
        except SyntaxError:
            continue
    if tree is None:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def render_prompt(problem: Problem, chat: bool) -> str:
    """The text sent to the model: the prompt itself, or for chat a user message around a code prefix."""
    if chat and prompt_is_code(problem.prompt):
        return CHAT_CODE_INSTRUCTION.format(prompt=problem.prompt)
    return problem.prompt


def stop_strings(problems: list[Problem], chat: bool) -> list[str]:
    """Stops for completion-style generation of code prefixes; prose prompts and chat answers run to the end.

    One list serves a whole benchmark (backends take one per batch); `build_program` cuts again per problem.
    """
    if chat or not all(prompt_is_code(p.prompt) for p in problems):
        return []
    return list(COMPLETION_STOPS)


def truncate_at_stop(text: str, stops: list[str] | tuple[str, ...]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def build_program(problem: Problem, answer: str, chat: bool) -> tuple[str, str]:
    """(completion, program): the part of the answer kept, and the code that runs before the tests.

    Completion style continues a code prefix, so the program is prompt + completion. A chat answer is reduced
    to its fenced code; if that code defines the entry point it goes after the prompt, whose imports and helper
    functions stay in scope and whose stub is simply redefined; a bare body continues the prompt.
    """
    from codeflow.diff.fence import extract_code

    if not prompt_is_code(problem.prompt):
        completion = extract_code(answer)[0]
        return completion, completion
    if not chat:
        completion = truncate_at_stop(answer, COMPLETION_STOPS)
        return completion, problem.prompt + completion
    completion = extract_code(answer)[0]
    if _defines_function(completion, problem.entry_point):
        return completion, f"{problem.prompt}\n\n{completion}"
    return completion, problem.prompt + completion


def _defines_function(code: str, name: str | None) -> bool:
    pattern = rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(" if name else r"^(?:async\s+)?def\s+\w+\s*\("
    return re.search(pattern, code, re.MULTILINE) is not None
