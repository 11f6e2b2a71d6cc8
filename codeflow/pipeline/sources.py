"""Where problems come from: a problems JSONL file, or any dataset `datasets` can load, converted row by row.

    codeflow build problems.jsonl ...                        # the native schema (problems.py)
    codeflow build kodcode.parquet --format kodcode ...      # a preset for a known schema
    codeflow build data/ --map instruction=prompt --map tests=test ...

A source is a JSONL file, a local data file (.parquet, .arrow, .json, .jsonl, .csv), a directory written by
`Dataset.save_to_disk` or holding data files, or a Hugging Face hub name (for users with network). A preset
says which columns hold each problem field (`--map FIELD=COLUMN` overrides or extends it); test cases are
read from an `input_output` JSON column (TACO, APPS: stdin/stdout lists, or call-based with `fn_name`) or
from `{input, output}` columns (CodeContests). A row that cannot be converted is reported by its row index
(JSONL: its line) and counted; the others are built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeflow.pipeline.problems import TEST_STYLES, Problem, ProblemFileError, load_problems, parse_problem

# The fields a mapping can fill. `starter_code` is shown after the instruction; `input_output` and `cases` are
# test-case columns converted into `tests`; `language` marks rows that are not Python (skipped).
FIELDS = (
    "id",
    "instruction",
    "tests",
    "test_style",
    "entry_point",
    "solution",
    "starter_code",
    "input_output",
    "cases",
    "language",
    "source",
    "license",
)
DATA_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".tsv": "csv"}
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
MAX_ERRORS_SHOWN = 10  # bad rows printed one per line; the rest are counted


class SourceError(ValueError):
    """A source that cannot be read at all (missing, unknown format, bad --map): one line saying what to do."""


@dataclass(frozen=True)
class Preset:
    name: str
    columns: dict[str, tuple[str, ...]]  # field -> candidate columns, the first present in the row wins
    test_style: str | None = None  # the style of `tests` when the schema fixes it
    description: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "kodcode",
            {
                "id": ("question_id",),
                "instruction": ("question",),
                "tests": ("test",),
                "solution": ("solution",),
                "entry_point": ("test_info",),
            },
            test_style="pytest",
            description="KodCode: question, test (pytest functions importing from solution), solution",
        ),
        Preset(
            "taco",
            {
                "id": ("id", "problem_id"),
                "instruction": ("question",),
                "input_output": ("input_output",),
                "solution": ("solutions",),
                "starter_code": ("starter_code",),
            },
            description="TACO: question, input_output (JSON stdin/stdout or fn_name calls), solutions, starter_code",
        ),
        Preset(
            "apps",
            {
                "id": ("problem_id", "id"),
                "instruction": ("question",),
                "input_output": ("input_output",),
                "solution": ("solutions",),
                "starter_code": ("starter_code",),
            },
            description="APPS: like TACO, with problem_id",
        ),
        Preset(
            "codecontests",
            {
                "id": ("name",),
                "instruction": ("description",),
                "cases": ("public_tests", "private_tests", "generated_tests"),
                "solution": ("solutions",),
            },
            description="CodeContests: description, public/private/generated_tests {input, output}, solutions",
        ),
        Preset(
            "opencodeinstruct",
            {
                "id": ("id",),
                "instruction": ("input",),
                "tests": ("unit_tests",),
                "solution": ("output",),
            },
            test_style="script",
            description="OpenCodeInstruct: input, unit_tests (a list of asserts), output",
        ),
        Preset(
            "oss-instruct",
            {
                "id": ("index", "id"),
                "instruction": ("problem",),
                "solution": ("solution",),
                "language": ("lang",),
            },
            description="Magicoder OSS-Instruct: problem, solution; no tests (the model writes them)",
        ),
        Preset(
            "evol-instruct",
            {"id": ("id",), "instruction": ("instruction",), "solution": ("response", "output")},
            description="Evol-Instruct: instruction, response (or output); no tests (the model writes them)",
        ),
    )
}


@dataclass
class SourceReport:
    problems: list[Problem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "WHERE: reason", WHERE a file:line or "SOURCE row N"
    rows: int = 0  # rows (or non-blank lines) read

    @property
    def skipped(self) -> int:
        return len(self.errors)


def parse_map(items: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """`--map field=column` (repeatable; `cases=a,b` reads several columns) as {field: columns}."""
    mapping: dict[str, tuple[str, ...]] = {}
    for item in items:
        name, sep, columns = item.partition("=")
        name = name.strip()
        if not sep or not name or not columns.strip():
            raise SourceError(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map instruction=question")
        if name not in FIELDS:
            raise SourceError(f"--map {item!r}: unknown field {name!r}; fields are {', '.join(FIELDS)}")
        mapping[name] = tuple(c.strip() for c in columns.split(",") if c.strip())
    return mapping


def load_source(
    source: str,
    *,
    format: str | None = None,
    maps: Iterable[str] = (),
    split: str = "train",
    dataset_config: str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> SourceReport:
    """Problems from `source` (see the module docstring). Bad rows are listed in `errors`; with `strict`
    the first one raises ProblemFileError. A source that cannot be read raises SourceError."""
    mapping = parse_map(maps)
    if format is not None and format not in PRESETS:
        raise SourceError(f"--format {format!r}: choose one of {', '.join(PRESETS)}")
    preset = PRESETS.get(format) if format else None
    if preset and preset.test_style and preset.test_style not in TEST_STYLES:
        raise SourceError(
            f"--format {format} needs the sandbox's {preset.test_style} test style, which this sandbox does not "
            f"have (it runs {', '.join(TEST_STYLES)})"
        )
    path = Path(source)
    native = preset is None and not mapping
    if path.is_file() and path.suffix.lower() in JSON_SUFFIXES:
        if native:
            report = load_problems(path, strict=strict)
            return SourceReport(report.problems, report.errors, report.rows)
        return _convert(_json_rows(path, strict), preset, mapping, strict)
    if native and path.is_file():
        raise SourceError(
            f"{source}: a {path.suffix or 'suffix-less'} file is read as a dataset; "
            f"say which schema it has with --format ({', '.join(PRESETS)}) or --map FIELD=COLUMN"
        )
    rows = _dataset_rows(source, path, split, dataset_config, progress)
    return _convert(rows, preset, mapping, strict, native=native)


# -- reading rows ---------------------------------------------------------------------------------------------


def _json_rows(path: Path, strict: bool) -> Iterator[tuple[str, Any]]:
    """(where, row) per JSON line; a file holding one JSON array gives its items (where = row index)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise SourceError(
                f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
            ) from None
        for index, item in enumerate(items):
            yield f"{path} row {index}", item
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            yield f"{path}:{lineno}", ValueError(f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        yield f"{path}:{lineno}", row


def _dataset_rows(
    source: str, path: Path, split: str, config: str | None, progress: bool
) -> Iterator[tuple[str, Any]]:
    dataset = open_dataset(source, path, split, config, progress)
    for index, row in enumerate(dataset):
        yield f"{source} row {index}", row


def open_dataset(source: str, path: Path, split: str, config: str | None, progress: bool = True) -> Any:
    """A `datasets.Dataset` for a local data file, a saved or data directory, or a hub name."""
    try:
        import datasets
    except ImportError:
        raise SourceError(
            f"{source}: reading datasets needs the `datasets` package (pip install datasets)"
        ) from None
    datasets.logging.set_verbosity_error()
    if not progress:
        from codeflow.cli import silence_third_party_bars

        silence_third_party_bars(("datasets",))
    try:
        if path.is_dir():
            if any(
                (path / marker).exists()
                for marker in ("dataset_info.json", "state.json", "dataset_dict.json")
            ):
                loaded = datasets.load_from_disk(str(path))
            elif _data_files(path):
                loaded = datasets.load_dataset(str(path), split=split)
            else:
                raise SourceError(
                    f"{source}: a directory with no problems file, data files or saved dataset in it; give a "
                    f"problems .jsonl file, a data file ({', '.join(sorted({*DATA_SUFFIXES, *JSON_SUFFIXES}))}) "
                    f"or a directory written by Dataset.save_to_disk"
                )
        elif path.is_file():
            builder = DATA_SUFFIXES.get(path.suffix.lower())
            if builder is None:
                raise SourceError(
                    f"{source}: unknown data file type {path.suffix!r}; use .jsonl, .json, .parquet, .arrow or .csv"
                )
            loaded = datasets.load_dataset(builder, data_files=str(path), split="train")
        elif path.suffix.lower() in (*DATA_SUFFIXES, *JSON_SUFFIXES) or source.startswith((".", "/", "~")):
            raise SourceError(f"{source}: no such file")
        elif not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source):
            raise SourceError(f"{source}: no such file, and not a Hugging Face dataset name (owner/name)")
        else:
            loaded = datasets.load_dataset(source, config, split=split)
    except SourceError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets raises many kinds; the user needs one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SourceError(f"{source}: cannot load it as a dataset ({type(e).__name__}: {first})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SourceError(f"{source}: no split {split!r}; it has {', '.join(loaded)} (use --split)")
        loaded = loaded[split]
    return loaded


def _data_files(directory: Path) -> list[Path]:
    suffixes = {*DATA_SUFFIXES, *JSON_SUFFIXES}
    return [p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in suffixes]


# -- converting rows ------------------------------------------------------------------------------------------


def _convert(
    rows: Iterable[tuple[str, Any]],
    preset: Preset | None,
    mapping: dict[str, tuple[str, ...]],
    strict: bool,
    native: bool = False,
) -> SourceReport:
    columns = dict(preset.columns) if preset else {}
    columns.update(mapping)
    if native:  # a dataset in the problems schema: every field is its own column
        columns = {name: (name,) for name in FIELDS}
    report = SourceReport()
    seen: dict[str, str] = {}
    checked = False
    for index, (where, row) in enumerate(rows):
        report.rows += 1
        if not checked and isinstance(row, dict) and not native:
            _check_columns(where, row, mapping)
            checked = True
        try:
            if isinstance(row, Exception):
                raise row
            if not isinstance(row, dict):
                raise ValueError(f"expected an object with columns, got {type(row).__name__}")
            problem = row_to_problem(row, columns, preset, index)
            if problem.id in seen:
                raise ValueError(f"duplicate id {problem.id!r} (first at {seen[problem.id]})")
        except ValueError as e:
            message = f"{where}: {e}"
            if strict:
                raise ProblemFileError(message) from None
            report.errors.append(message)
            continue
        seen[problem.id] = where
        report.problems.append(problem)
    return report


def _check_columns(where: str, row: dict, mapping: dict[str, tuple[str, ...]]) -> None:
    """A --map column that the data does not have is a usage error, not a bad row."""
    for name, columns in mapping.items():
        missing = [c for c in columns if c not in row]
        if missing:
            raise SourceError(
                f"--map {name}={','.join(columns)}: no column {missing[0]!r} in the data (at {where}); "
                f"its columns are {', '.join(row)}"
            )


def _first(row: dict, columns: tuple[str, ...]) -> Any:
    for column in columns:
        value = row.get(column)
        if value is not None and value != "" and value != [] and value != {}:
            return value
    return None


def row_to_problem(
    row: dict, columns: dict[str, tuple[str, ...]], preset: Preset | None, index: int
) -> Problem:
    """One row as a Problem; ValueError says which field is wrong."""
    get = {name: _first(row, cols) for name, cols in columns.items()}
    language = get.get("language")
    if isinstance(language, str) and language.strip().lower() not in ("python", "python3", "py"):
        raise ValueError(f"language {language!r} is not Python")
    pid = get.get("id")
    if pid is None:
        pid = f"{preset.name if preset else 'row'}-{index}"
    instruction = get.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        wanted = ", ".join(columns.get("instruction", ("instruction",)))
        raise ValueError(f"no instruction (column {wanted} is missing or empty)")
    starter = get.get("starter_code")
    if isinstance(starter, str) and starter.strip():
        instruction = f"{instruction.rstrip()}\n\nStart from this code:\n```python\n{starter.rstrip()}\n```"

    style = get.get("test_style") or (preset.test_style if preset else None)
    tests: Any = get.get("tests")
    entry_point = _entry_point(get.get("entry_point"))
    if get.get("input_output") is not None:
        tests, style, fn_name = input_output_tests(get["input_output"], starter)
        entry_point = entry_point or fn_name
    elif "cases" in columns:
        cases = [c for column in columns["cases"] for c in _cases(row.get(column), column)]
        if cases:
            tests, style = cases, "stdio"
    elif tests is not None:
        tests = _test_code(tests)
        style = style or guess_style(tests)
    if not tests:
        tests, style = None, "script"  # the model writes a test file of plain asserts
    obj = {
        "id": str(pid),
        "instruction": instruction,
        "tests": tests,
        "test_style": style or "script",
        "entry_point": entry_point,
        "solution": solution_code(get.get("solution")),
        "source": _text(get.get("source")) or (preset.name if preset else None),
        "license": _text(get.get("license")),
    }
    return parse_problem(obj)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _entry_point(value: Any) -> str | None:
    """A function name, or KodCode's test_info (a list of {"function_name": ...})."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0].get("function_name")
    if isinstance(value, str) and value.isidentifier():
        return value
    return None


def _test_code(value: Any) -> str:
    """Test code from a string, a list of assert lines, or a JSON string holding such a list (OpenCodeInstruct)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                return value
        else:
            return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(line.rstrip("\n") + "\n" for line in value)
    raise ValueError(f"tests must be test code or a list of assert lines, got {type(value).__name__}")


def guess_style(tests: str) -> str:
    """unittest for TestCase classes, pytest for bare test functions (when the sandbox runs pytest), else script."""
    if re.search(r"^\s*(import unittest|from unittest\b)|\(\s*(unittest\.)?TestCase\s*\)", tests, re.M):
        return "unittest"
    calls_tests = re.search(r"^(assert\b|check\(|test_\w+\()", tests, re.M)
    if "pytest" in TEST_STYLES and re.search(r"^def test_\w*\(", tests, re.M) and not calls_tests:
        return "pytest"
    return "script"


def _lines(value: Any) -> str:
    """A stdin/stdout value as text: lists of lines are joined (APPS stores some inputs that way)."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value) + "\n"
    if not isinstance(value, str):
        raise ValueError(f"a stdin/stdout value must be text, got {type(value).__name__}")
    return value


def input_output_tests(value: Any, starter: Any = None) -> tuple[Any, str, str | None]:
    """(tests, style, fn_name) from a TACO/APPS `input_output` (a JSON string or a dict of inputs/outputs).

    Without `fn_name` the lists are stdin/stdout cases. With it, each input is an argument list and the
    program is called: a script test asserts each return value (as APPS' own checker does, a list-wrapped
    expected value also matches its first element; a class Solution in the starter code is instantiated).
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"input_output is not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(value, dict):
        raise ValueError("input_output must be an object with 'inputs' and 'outputs'")
    inputs, outputs = value.get("inputs"), value.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise ValueError("input_output needs 'inputs' and 'outputs' lists of the same length")
    if not inputs:
        return None, "script", None
    fn_name = value.get("fn_name")
    if not fn_name:
        return (
            [{"stdin": _lines(i), "stdout": _lines(o)} for i, o in zip(inputs, outputs, strict=True)],
            "stdio",
            None,
        )
    if not isinstance(fn_name, str) or not fn_name.isidentifier():
        raise ValueError(f"input_output fn_name {fn_name!r} is not a Python name")
    in_class = isinstance(starter, str) and re.search(r"^class Solution\b", starter, re.M) is not None
    target = f"Solution().{fn_name}" if in_class else fn_name
    lines = [
        "def _matches(got, want):",
        "    got = list(got) if isinstance(got, tuple) else got",
        "    return got == want or (isinstance(want, list) and len(want) == 1 and got == want[0])",
        "",
        "",
        f"_cases = {json.dumps(list(zip(inputs, outputs, strict=True)))}",
        "for _args, _want in _cases:",
        f"    _got = {target}(*_args)",
        f'    assert _matches(_got, _want), f"{fn_name}{{tuple(_args)}} returned {{_got!r}}, expected {{_want!r}}"',
    ]
    return "\n".join(lines) + "\n", "script", fn_name


def _cases(value: Any, column: str) -> list[dict]:
    """stdin/stdout cases from {"input": [...], "output": [...]} (CodeContests) or a list of such pairs."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"column {column!r} is not valid JSON ({e.msg})") from None
    if isinstance(value, dict):
        inputs, outputs = value.get("input", value.get("inputs")), value.get("output", value.get("outputs"))
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise ValueError(f"column {column!r} needs 'input' and 'output' lists of the same length")
        return [{"stdin": _lines(i), "stdout": _lines(o)} for i, o in zip(inputs, outputs, strict=True)]
    if isinstance(value, list):
        out = []
        for case in value:
            if not isinstance(case, dict):
                raise ValueError(f"column {column!r}: each case must be an object with input and output")
            stdin = case.get("input", case.get("stdin", ""))
            stdout = case.get("output", case.get("stdout"))
            if stdout is None:
                raise ValueError(f"column {column!r}: a case has no output")
            out.append({"stdin": _lines(stdin), "stdout": _lines(stdout)})
        return out
    raise ValueError(f"column {column!r} must hold input/output lists, got {type(value).__name__}")


# CodeContests' `solutions.language`: 3 is Python 3 (1 is Python 2, which Python 3 cannot run).
_CODECONTESTS_PYTHON3 = 3


def solution_code(value: Any) -> str | None:
    """A reference solution: a string (its python fence when it has one), the first of a list or a JSON list
    (TACO, APPS), or the first Python 3 entry of CodeContests' {language, solution} lists."""
    if value is None:
        return None
    if isinstance(value, dict):
        languages, solutions = value.get("language") or [], value.get("solution") or []
        picked = [s for lang, s in zip(languages, solutions, strict=False) if lang == _CODECONTESTS_PYTHON3]
        return solution_code(picked[0]) if picked else None
    if isinstance(value, list):
        return next((code for code in map(solution_code, value) if code), None)
    if not isinstance(value, str) or not value.strip():
        return None
    stripped = value.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            return solution_code(json.loads(stripped))
        except json.JSONDecodeError:
            pass
    if "```" in value:
        from codeflow.diff.fence import extract_code

        code = extract_code(value)[0]
        return code if code.strip() else None
    return value
