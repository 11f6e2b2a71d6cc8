"""Prompts sent to the model and the parsing of its answers (file markers plus fenced code).

An answer names each file on a marker line (`### solution.py`, `### test_solution.py`) followed by a fenced
Python block. Tests are frozen once generation is done: a refinement answer that carries a different test file
is rejected (`tests_edited`) rather than accepted, so the model cannot pass by weakening its tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codeflow.diff.fence import fenced_blocks
from codeflow.pipeline.problems import Problem

SYSTEM = "You are an expert Python programmer. You write correct, clean, self-contained Python 3 code."
SOLUTION_FILE = "solution.py"
TEST_FILE = "test_solution.py"
MAX_STDIO_CASES_SHOWN = 5

_FILENAME = re.compile(r"([\w./-]+\.py)\b")


@dataclass
class ParsedAnswer:
    solution: str | None  # None when the answer has no code at all
    tests: str | None  # the test file, when the answer carries one


def _style_note(style: str) -> str:
    if style == "stdio":
        return "The program reads standard input and writes the answer to standard output."
    if style == "unittest":
        return f"The tests are a unittest module that runs after {SOLUTION_FILE}'s definitions are loaded."
    return f"The tests are plain assert statements that run after {SOLUTION_FILE}'s definitions are loaded."


def format_tests(problem: Problem, tests: str | list[dict]) -> str:
    """The tests as the model sees them: a test file, or stdin/stdout cases for stdio problems."""
    if isinstance(tests, list):
        shown = [
            f"Input:\n```\n{case.get('stdin', '')}```\nExpected output:\n```\n{case['stdout']}```"
            for case in tests[:MAX_STDIO_CASES_SHOWN]
        ]
        more = len(tests) - len(shown)
        return "\n".join(shown) + (f"\n({more} more hidden cases)" if more > 0 else "")
    return f"### {TEST_FILE}\n```python\n{tests.rstrip()}\n```"


def generation_messages(problem: Problem) -> list[dict]:
    if problem.has_tests:
        task = (
            f"{problem.instruction.strip()}\n\n{_style_note(problem.test_style)}\n"
            f"Your code will be checked against these tests:\n\n{format_tests(problem, problem.tests)}\n\n"
            f"Answer with the complete solution as `### {SOLUTION_FILE}` followed by one ```python block."
        )
    else:
        entry = f" The tests must call `{problem.entry_point}`." if problem.entry_point else ""
        task = (
            f"{problem.instruction.strip()}\n\n"
            f"Write the solution and a test file that checks it with plain assert statements; the test file "
            f"runs after {SOLUTION_FILE}'s definitions are loaded, so it must not import {SOLUTION_FILE}.{entry}\n"
            f"Answer with two files, each a marker line followed by one ```python block:\n"
            f"### {SOLUTION_FILE}\n```python\n...\n```\n### {TEST_FILE}\n```python\n...\n```"
        )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def feedback_text(
    answer_kind: str,
    status: str | None,
    error_type: str | None,
    failing_test: str | None,
    message: str | None,
    traceback: str | None,
) -> str:
    """What went wrong with the previous attempt, in the words the model reads."""
    if answer_kind == "truncated":
        return "Your previous answer was cut off at the token limit. Answer again, more concisely."
    if answer_kind == "no_code":
        return "Your previous answer contained no Python code block."
    if answer_kind == "no_tests":
        return f"Your previous answer had no test file. Give both {SOLUTION_FILE} and {TEST_FILE}."
    if answer_kind == "tests_edited":
        return "Your previous answer changed the tests. The tests are fixed: change only the solution."
    lines = [f"Status: {status}" + (f" ({error_type})" if error_type else "")]
    if failing_test:
        lines.append(f"Failing test: {failing_test}")
    if message:
        lines.append(f"Message: {message}")
    if traceback:
        lines.append(f"Traceback:\n```\n{traceback.rstrip()}\n```")
    return "\n".join(lines)


def refinement_messages(problem: Problem, code: str, tests: str | list[dict], feedback: str) -> list[dict]:
    task = (
        f"{problem.instruction.strip()}\n\n{_style_note(problem.test_style)}\n\n"
        f"This solution does not pass the tests.\n\n### {SOLUTION_FILE}\n```python\n{code.rstrip()}\n```\n\n"
        f"{format_tests(problem, tests)}\n\n{feedback}\n\n"
        f"Fix the solution. The tests are fixed and must not change. Answer with the complete corrected "
        f"`### {SOLUTION_FILE}` in one ```python block."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def judge_messages(rejected_code: str, chosen_code: str) -> list[dict]:
    task = (
        "Two versions of a Python program follow. Does the change from version A to version B alter what the "
        "program computes, or only its formatting, comments or names?\n\n"
        f"Version A:\n```python\n{rejected_code.rstrip()}\n```\n\nVersion B:\n```python\n{chosen_code.rstrip()}\n```\n\n"
        "Answer with one word: FUNCTIONAL or COSMETIC."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def parse_judgement(text: str) -> bool | None:
    """True if the judge says the difference is functional, False if cosmetic, None if it cannot tell."""
    upper = text.upper()
    functional, cosmetic = upper.rfind("FUNCTIONAL"), upper.rfind("COSMETIC")
    if functional == cosmetic == -1:
        return None
    return functional > cosmetic


def parse_answer(text: str) -> ParsedAnswer:
    """Split an answer into its solution and test files.

    A block belongs to the file named last in the prose before it; a name containing `test` marks the tests.
    Without markers the first block is the solution and a later block that defines tests is the test file.
    """
    solution = tests = None
    previous_end = 0
    for block in fenced_blocks(text):  # the project's one fence parser (codeflow.diff.fence)
        names = _FILENAME.findall(text[previous_end : block.fence_start])
        previous_end = block.fence_end
        code = text[block.start : block.end]
        if not block.is_python:
            continue
        if names:
            is_test = "test" in names[-1].lower()
        else:
            is_test = solution is not None and bool(
                re.search(r"^\s*(assert |def test|class Test)", code, re.M)
            )
        if is_test and tests is None:
            tests = code
        elif not is_test and solution is None:
            solution = code
    return ParsedAnswer(solution=solution, tests=tests)


def same_tests(a: str, b: str) -> bool:
    """Tests are the same file if they differ at most in trailing whitespace."""
    return [line.rstrip() for line in a.strip().splitlines()] == [
        line.rstrip() for line in b.strip().splitlines()
    ]
