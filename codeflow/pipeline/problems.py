"""A problem as the pipeline reads it, and the problems JSONL format: one object a line, bad lines reported by
line number. Other sources (datasets, presets) are converted into the same `Problem` in sources.py."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.suite import STYLES as TEST_STYLES
from sandbox.suite import TestSuite


@dataclass
class Problem:
    id: str
    instruction: str
    tests: str | list[dict] | None = None
    test_style: str = "script"
    entry_point: str | None = None
    solution: str | None = None
    source: str | None = None
    license: str | None = None

    @property
    def has_tests(self) -> bool:
        return bool(self.tests)

    def suite(self, tests: str | list[dict] | None = None) -> TestSuite:
        """The sandbox suite of this problem's tests, or of `tests` (tests the model wrote, frozen later)."""
        return TestSuite.from_tests(self.test_style, self.tests if tests is None else tests)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoadReport:
    problems: list[Problem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "FILE:LINE: what is wrong"
    rows: int = 0  # non-blank lines read

    @property
    def skipped(self) -> int:
        return len(self.errors)


class ProblemFileError(ValueError):
    """A bad line in a problems file under --strict."""


def parse_problem(obj: object) -> Problem:
    """Validate one decoded JSON value; raises ValueError saying which field is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    for name in ("id", "instruction"):
        if name not in obj:
            raise ValueError(f"missing field {name!r}")
    pid, instruction = obj["id"], obj["instruction"]
    if not isinstance(pid, (str, int)) or isinstance(pid, bool) or str(pid).strip() == "":
        raise ValueError("field 'id' must be a non-empty string")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("field 'instruction' must be a non-empty string")
    style = obj.get("test_style") or "script"
    if style not in TEST_STYLES:
        raise ValueError(f"field 'test_style' must be one of {', '.join(TEST_STYLES)}, got {style!r}")
    tests = obj.get("tests")
    if tests is not None and tests != [] and tests != "":
        try:
            tests = TestSuite.from_tests(style, tests).stored()
        except ValueError as e:
            raise ValueError(f"field 'tests': {e}") from None
    for name in ("entry_point", "solution", "source", "license"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise ValueError(f"field {name!r} must be a string")
    return Problem(
        id=str(pid),
        instruction=instruction,
        tests=tests or None,
        test_style=style,
        entry_point=obj.get("entry_point"),
        solution=obj.get("solution"),
        source=obj.get("source"),
        license=obj.get("license"),
    )


def load_problems(path: str | Path, strict: bool = False) -> LoadReport:
    """Read a problems JSONL file. Bad lines (not JSON, missing field, duplicate id) are skipped and listed
    in `errors` as "FILE:LINE: reason"; with `strict` the first one raises ProblemFileError instead."""
    path = Path(path)
    report = LoadReport()
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            report.rows += 1
            try:
                try:
                    obj = json.loads(line.rstrip("\r\n"))  # so an error at the line's end names its column
                except json.JSONDecodeError as e:
                    raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
                problem = parse_problem(obj)
                if problem.id in seen:
                    raise ValueError(f"duplicate id {problem.id!r} (first on line {seen[problem.id]})")
            except ValueError as e:
                message = f"{path}:{lineno}: {e}"
                if strict:
                    raise ProblemFileError(message) from None
                report.errors.append(message)
                continue
            seen[problem.id] = lineno
            report.problems.append(problem)
    return report
