"""The conversion snippets of docs/eval.md, run on hand-made rows in each source format, give files that score."""

from __future__ import annotations

import base64
import json
import pickle
import re
import zlib
from pathlib import Path

import pytest

from focal_dpo.eval.problems import read_problems_jsonl
from focal_dpo.eval.runner import EvalSettings, evaluate

DOC = Path(__file__).resolve().parents[1] / "docs" / "eval.md"


def snippet(marker: str) -> str:
    """The first ```python block of docs/eval.md that contains `marker`."""
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)
    found = [b for b in blocks if marker in b]
    assert found, f"no python block in {DOC} mentions {marker!r}"
    return found[0]


def _lcb_private(cases: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


SOURCES = {
    "HumanEvalPlus.jsonl": [
        {"task_id": "HumanEval/0", "prompt": 'def inc(x):\n    """x + 1"""\n', "canonical_solution": "    return x + 1\n",
         "entry_point": "inc", "test": "def check(candidate):\n    assert candidate(1) == 2\n"},
    ],
    "mbpp.jsonl": [
        {"task_id": 2, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
         "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "test_setup_code": ""},
    ],
    "MbppPlus.jsonl": [
        {"task_id": "Mbpp/2", "prompt": '"""\nWrite a function to add.\nassert add(1, 2) == 3\n"""\n',
         "code": "def add(a, b):\n    return a + b", "entry_point": "add",
         "test": "inputs = [[1, 2], [3, 4]]\nresults = [3, 7]\nfor inp, exp in zip(inputs, results):\n"
                 "    assert add(*inp) == exp\n"},
    ],
    "bigcodebench.jsonl": [
        {"task_id": "BigCodeBench/0", "complete_prompt": 'import math\n\ndef task_func(x):\n    """Floor sqrt."""\n',
         "instruct_prompt": "Write task_func.", "canonical_solution": "    return math.floor(math.sqrt(x))\n",
         "entry_point": "task_func",
         "test": "import unittest\n\nclass TestCases(unittest.TestCase):\n    def test_ten(self):\n"
                 "        self.assertEqual(task_func(10), 3)\n"},
    ],
}  # fmt: skip

LCB_ROWS = [
    {"question_id": "stdin-1", "question_content": "Print the sum of two integers read from one line.",
     "starter_code": "", "metadata": "{}",
     "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
     "private_test_cases": _lcb_private([{"input": "5 6\n", "output": "11\n", "testtype": "stdin"}])},
    {"question_id": "leetcode-1", "question_content": "Return a + b.",
     "starter_code": "class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
     "public_test_cases": json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
     "private_test_cases": "[]", "metadata": json.dumps({"func_name": "add"})},
]  # fmt: skip

ADD = "```python\ndef add(a, b):\n    return a + b\n```"
CASES = [
    # (snippet marker, converted file, chat?, right answer for every prompt, rows expected)
    ("HumanEvalPlus.jsonl", "humaneval_plus.jsonl", False, lambda p: "    return x + 1\n", 1),
    ('open("mbpp.jsonl")', "mbpp_eval.jsonl", True, lambda p: ADD, 1),
    ("MbppPlus.jsonl", "mbpp_plus.jsonl", True, lambda p: ADD, 1),
    ("bigcodebench.jsonl", "bcb_complete.jsonl", False, lambda p: "    return math.floor(math.sqrt(x))\n", 1),
]


@pytest.mark.parametrize("marker, converted, chat, right, rows", CASES)
def test_documented_conversion_gives_a_benchmark_that_scores(tmp_path, monkeypatch, marker, converted, chat, right,
                                                             rows):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name, source_rows in SOURCES.items():
        Path(name).write_text("".join(json.dumps(r) + "\n" for r in source_rows))
    exec(snippet(marker), {})
    _check_scores(tmp_path, converted, chat, right, rows)


def test_documented_livecodebench_conversion_covers_stdin_and_functional_tests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(snippet("def convert(row)"), namespace)
    Path("lcb.jsonl").write_text("".join(json.dumps(namespace["convert"](r)) + "\n" for r in LCB_ROWS))
    problems = read_problems_jsonl("lcb.jsonl")
    assert [p.test_style for p in problems] == ["stdio", "script"]
    assert len(problems[0].tests) == 2, "public and (pickled) private cases"

    def right(prompt: str) -> str:
        if "class Solution" in prompt:
            return "```python\nclass Solution:\n    def add(self, a, b):\n        return a + b\n```"
        return "```python\nprint(sum(map(int, input().split())))\n```"

    _check_scores(tmp_path, "lcb.jsonl", True, right, 2)


def _check_scores(tmp_path: Path, converted: str, chat: bool, right, rows: int) -> None:
    problems = read_problems_jsonl(tmp_path / converted)
    assert len(problems) == rows
    wrong = "```python\ndef unrelated():\n    pass\n```" if chat else "    return None\n"
    for answer, expected in ((right, 1.0), (lambda p: wrong, 0.0)):
        settings = EvalSettings(benchmark=converted, model=str(expected), chat=chat)
        summary = evaluate(
            problems, lambda ps, a=answer: [a(p) for p in ps], tmp_path / f"out{expected}", settings, False
        )
        assert summary["pass_at_k"] == {"pass@1": expected}
