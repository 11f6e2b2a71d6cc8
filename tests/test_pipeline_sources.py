"""`codeflow build SOURCE --format PRESET | --map FIELD=COLUMN`: hand-made local datasets in each schema the
presets know, converted and built end to end (simulate where the rows carry solutions and tests; a scripted
server that writes tests where they carry none); rows that cannot be converted are reported and counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from codeflow.cli import main as codeflow_main
from codeflow.pipeline.build import BuildConfig, build
from codeflow.pipeline.sources import PRESETS, SourceError, input_output_tests, load_source
from codeflow.pipeline.stats import collect
from sandbox.suite import STYLES, TestSuite

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    r["id"]: r
    for r in (json.loads(line) for line in (ROOT / "examples/problems.jsonl").read_text().splitlines())
}
SCRIPT_IDS = ["running_max", "roman_numerals", "merge_intervals", "caesar_shift"]
STDIO_IDS = ["stdio_sum_pairs", "stdio_grid_paths", "stdio_count_vowels"]


def asserts(pid: str) -> list[str]:
    """The example's script tests as a list of one-line assert statements."""
    lines = [line for line in EXAMPLES[pid]["tests"].splitlines() if line.strip()]
    assert all(line.startswith("assert ") for line in lines), pid
    return lines


def pytest_module(pid: str) -> str:
    name = EXAMPLES[pid]["entry_point"]
    body = "".join(f"def test_{i}():\n    {line}\n\n\n" for i, line in enumerate(asserts(pid)))
    return f"from solution import {name}\n\n\n{body}"


def stdio_lists(pid: str) -> tuple[list[str], list[str]]:
    cases = EXAMPLES[pid]["tests"]
    return [c["stdin"] for c in cases], [c["stdout"] for c in cases]


def fenced(code: str) -> str:
    return f"Here is a solution.\n\n```python\n{code}```\n\nIt runs in linear time."


def rows_for(preset: str) -> tuple[list[dict], int]:
    """(rows in the preset's schema, how many of them are bad and must be reported)."""
    if preset == "kodcode":
        rows = [
            {
                "question_id": f"Kod_{pid}",
                "question": EXAMPLES[pid]["instruction"],
                "test": pytest_module(pid),
                "solution": EXAMPLES[pid]["solution"],
                "test_info": [{"function_name": EXAMPLES[pid]["entry_point"]}],
                "style": "instruct",
            }
            for pid in SCRIPT_IDS
        ]
        rows.append(
            {"question_id": "Kod_bad", "question": "", "test": "def test_x():\n    pass\n", "solution": "x"}
        )
        return rows, 1
    if preset in ("taco", "apps"):
        rows = []
        for i, pid in enumerate(STDIO_IDS):
            inputs, outputs = stdio_lists(pid)
            row = {
                "question": EXAMPLES[pid]["instruction"],
                "input_output": json.dumps({"inputs": inputs, "outputs": outputs}),
                "solutions": json.dumps([EXAMPLES[pid]["solution"]]),
                "starter_code": "",
            }
            if preset == "apps":
                row["problem_id"] = 100 + i
            rows.append(row)
        # a call-based problem: fn_name, argument lists, list-wrapped expected values, a class Solution
        add = {
            "question": "Given two integers a and b, return their sum.",
            "input_output": json.dumps(
                {"fn_name": "add", "inputs": [[1, 2], [-3, 3], [10, 5]], "outputs": [[3], [0], [15]]}
            ),
            "solutions": json.dumps(["class Solution:\n    def add(self, a, b):\n        return a + b\n"]),
            "starter_code": "class Solution:\n    def add(self, a, b):\n        ",
        }
        rows.append(add | ({"problem_id": 200} if preset == "apps" else {}))
        bad = {"question": "Broken row.", "input_output": "{not json", "solutions": "[]", "starter_code": ""}
        rows.append(bad | ({"problem_id": 300} if preset == "apps" else {}))
        return rows, 1
    if preset == "codecontests":
        rows = []
        for pid in STDIO_IDS:
            inputs, outputs = stdio_lists(pid)
            rows.append(
                {
                    "name": f"cc_{pid}",
                    "description": EXAMPLES[pid]["instruction"],
                    "public_tests": {"input": inputs[:1], "output": outputs[:1]},
                    "private_tests": {"input": inputs[1:], "output": outputs[1:]},
                    "generated_tests": {"input": [], "output": []},
                    # C++ first (language 2), then the Python 3 solution (language 3)
                    "solutions": {
                        "language": [2, 3],
                        "solution": ["int main() {}", EXAMPLES[pid]["solution"]],
                    },
                }
            )
        rows.append(
            {
                "name": "cc_bad",
                "description": "A row whose tests do not pair up.",
                "public_tests": {"input": ["1\n"], "output": []},
                "private_tests": {"input": [], "output": []},
                "generated_tests": {"input": [], "output": []},
                "solutions": {"language": [], "solution": []},
            }
        )
        return rows, 1
    if preset == "opencodeinstruct":
        rows = [
            {
                "id": f"oci_{pid}",
                "input": EXAMPLES[pid]["instruction"],
                "output": fenced(EXAMPLES[pid]["solution"]),
                "unit_tests": json.dumps(asserts(pid)),
                "domain": "generic",
            }
            for pid in SCRIPT_IDS
        ]
        rows.append({"id": "oci_bad", "input": "Bad tests.", "output": "x", "unit_tests": json.dumps([1, 2])})
        return rows, 1
    if preset == "oss-instruct":
        rows = [
            {
                "lang": "python",
                "index": i,
                "problem": EXAMPLES[pid]["instruction"],
                "solution": fenced(EXAMPLES[pid]["solution"]),
            }
            for i, pid in enumerate(SCRIPT_IDS)
        ]
        rows.append(
            {"lang": "rust", "index": 99, "problem": "Write a Rust function.", "solution": "fn main() {}"}
        )
        return rows, 1
    if preset == "evol-instruct":
        rows = [
            {"instruction": EXAMPLES[pid]["instruction"], "response": fenced(EXAMPLES[pid]["solution"])}
            for pid in SCRIPT_IDS
        ]
        rows.append({"instruction": None, "response": "no instruction"})
        return rows, 1
    raise AssertionError(preset)


def write_dataset(rows: list[dict], path: Path, kind: str) -> Path:
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    if kind == "parquet":
        dataset.to_parquet(str(path.with_suffix(".parquet")))
        return path.with_suffix(".parquet")
    if kind == "saved":
        dataset.save_to_disk(str(path))
        return path
    if kind == "jsonl":
        path = path.with_suffix(".jsonl")
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    raise AssertionError(kind)


def needs_style(preset: str) -> None:
    wanted = PRESETS[preset].test_style
    if wanted and wanted not in STYLES:
        pytest.skip(f"--format {preset} needs the sandbox's {wanted} test style, not in this sandbox yet")


# Where each preset's rows are written: a mix of the source kinds `codeflow build` reads.
WITH_TESTS = {
    "kodcode": "parquet",
    "taco": "saved",
    "apps": "jsonl",
    "codecontests": "parquet",
    "opencodeinstruct": "saved",
}


@pytest.mark.parametrize("preset", list(WITH_TESTS))
def test_a_preset_with_tests_builds_pairs_with_simulate_and_counts_its_bad_row(preset, tmp_path):
    needs_style(preset)
    rows, bad = rows_for(preset)
    source = write_dataset(rows, tmp_path / "data", WITH_TESTS[preset])
    report = load_source(str(source), format=preset)
    assert len(report.problems) == len(rows) - bad and report.skipped == bad
    assert all(re.search(r"( row \d+|:\d+): ", e) for e in report.errors), report.errors
    for problem in report.problems:
        assert problem.tests and problem.solution, problem.id
        TestSuite.from_tests(problem.test_style, problem.tests)  # the sandbox can run them as stored
    styles = {p.test_style for p in report.problems}
    assert styles == {"kodcode": {"pytest"}, "opencodeinstruct": {"script"}, "codecontests": {"stdio"}}.get(
        preset, {"stdio", "script"}
    )

    out = tmp_path / "run"
    config = BuildConfig(
        problems=str(source), out=str(out), format=preset, seed=3, progress=False, exec_timeout_s=3
    )
    result = build(config)
    assert result.outcomes["passed"] == len(
        report.problems
    )  # simulate ends every trajectory at the reference
    assert result.pairs >= 1 and result.skipped_lines == bad
    stats = collect(out)
    assert stats["bad_rows"] == bad and stats["problems"] == len(report.problems)


def test_call_based_input_output_becomes_a_script_test_that_calls_the_function():
    tests, style, fn_name = input_output_tests(
        {"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]}, "class Solution:\n    def add(self, a, b):"
    )
    assert (style, fn_name) == ("script", "add")
    namespace: dict = {}
    exec("class Solution:\n    def add(self, a, b):\n        return a + b\n" + tests, namespace)  # passes
    with pytest.raises(AssertionError, match=r"add\(1, 2\) returned -1, expected \[3\]"):
        exec("class Solution:\n    def add(self, a, b):\n        return a - b\n" + tests, {})
    stdio, style, _ = input_output_tests(json.dumps({"inputs": [["1", "2"]], "outputs": ["3\n"]}))
    assert style == "stdio" and stdio == [{"stdin": "1\n2\n", "stdout": "3\n"}]


@pytest.mark.parametrize("preset", ["oss-instruct", "evol-instruct"])
def test_a_preset_without_tests_is_skipped_by_simulate_and_built_by_a_model_that_writes_tests(
    preset, tmp_path
):
    from tests.fake_openai_server import FakeOpenAIServer, answer

    rows, bad = rows_for(preset)
    source = write_dataset(rows, tmp_path / "data", "parquet")
    report = load_source(str(source), format=preset)
    assert len(report.problems) == len(rows) - bad
    assert all(p.tests is None and p.solution and "```" not in p.solution for p in report.problems)
    if preset == "oss-instruct":
        assert "language 'rust' is not Python" in report.errors[0]

    simulated = build(
        BuildConfig(problems=str(source), out=str(tmp_path / "sim"), format=preset, progress=False)
    )
    assert simulated.outcomes == {"skipped": len(report.problems)}

    by_instruction = {EXAMPLES[pid]["instruction"]: EXAMPLES[pid] for pid in SCRIPT_IDS}

    def reply(request) -> str:
        """A first answer that fails its own tests, then the reference solution as the fix."""
        example = next(e for text, e in by_instruction.items() if text in request.prompt_text)
        if "does not pass the tests" in request.prompt_text:
            return f"### solution.py\n```python\n{example['solution']}```\n"
        broken = "raise NotImplementedError\n"
        return f"### solution.py\n```python\n{broken}```\n### test_solution.py\n```python\n{example['tests']}```\n"

    with FakeOpenAIServer(default=answer(reply)) as server:
        config = BuildConfig(
            problems=str(source),
            out=str(tmp_path / "llm"),
            format=preset,
            llm="openai",
            model="fake-model",
            base_url=server.base_url,
            progress=False,
            no_humaneval=True,
        )
        result = build(config)
    assert result.outcomes == {"passed": len(report.problems)}
    assert result.calls == 2 * len(report.problems) == result.requests
    pairs = [json.loads(line) for line in result.pairs_path.read_text().splitlines()]
    assert len(pairs) == result.pairs >= 1
    assert all(p["test_style"] == "script" and p["tests"] for p in pairs)


def test_map_reads_any_schema_and_overrides_a_preset(tmp_path):
    rows = [
        {
            "pid": pid,
            "prompt": EXAMPLES[pid]["instruction"],
            "checks": EXAMPLES[pid]["tests"],
            "ref": EXAMPLES[pid]["solution"],
        }
        for pid in SCRIPT_IDS[:2]
    ]
    source = write_dataset(rows, tmp_path / "mine", "parquet")
    maps = ["id=pid", "instruction=prompt", "tests=checks", "solution=ref"]
    report = load_source(str(source), maps=maps)
    assert [p.id for p in report.problems] == SCRIPT_IDS[:2]
    assert all(p.test_style == "script" and p.tests and p.solution for p in report.problems)
    # a preset with one column renamed
    kod = [
        {
            "qid": "k1",
            "question": "Write f.",
            "test": "assert f() == 1\n",
            "solution": "def f():\n    return 1\n",
        }
    ]
    renamed = load_source(
        str(write_dataset(kod, tmp_path / "k", "jsonl")),
        format="opencodeinstruct",
        maps=["id=qid", "instruction=question", "tests=test", "solution=solution"],
    )
    assert [(p.id, p.instruction, p.test_style) for p in renamed.problems] == [("k1", "Write f.", "script")]


def test_bad_sources_and_maps_are_one_line_errors_with_exit_2(tmp_path, capsys):
    data = write_dataset([{"q": "x"}], tmp_path / "d", "parquet")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    cases = [
        ([str(empty_dir)], "a directory with no problems file"),
        ([str(tmp_path / "missing.jsonl")], "no such file"),
        ([str(data)], "say which schema it has with --format"),
        ([str(data), "--map", "instruction"], "expected FIELD=COLUMN"),
        ([str(data), "--map", "colour=q"], "unknown field 'colour'"),
        ([str(data), "--map", "instruction=question"], "no column 'question' in the data"),
        ([str(data), "--format", "taco", "--split", "test"], "no valid problems"),
    ]
    for argv, message in cases:
        rc = codeflow_main(["build", *argv, "--out", str(tmp_path / "run"), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, argv
        assert message in err[-1] and err[-1].startswith("codeflow build: error: "), (argv, err)
    with pytest.raises(SourceError, match="unknown data file type"):
        (tmp_path / "x.xml").write_text("<a/>")
        load_source(str(tmp_path / "x.xml"), format="taco")


def test_bad_rows_beyond_the_first_ten_are_counted_not_printed(tmp_path, capsys):
    lines = [json.dumps({"id": "ok", "instruction": "x", "tests": "assert True\n", "solution": "x = 1\n"})]
    lines += ["{broken" for _ in range(14)]
    source = tmp_path / "p.jsonl"
    source.write_text("\n".join(lines) + "\n")
    assert codeflow_main(["build", str(source), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 11 and "skipped 4 more bad rows" in skipped[-1]
    assert (
        "p.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"
        in skipped[0]
    )
    assert "14  source rows skipped (could not be read)" in captured.out
    assert collect(tmp_path / "run")["bad_rows"] == 14
