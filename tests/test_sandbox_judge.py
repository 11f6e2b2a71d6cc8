"""The two modes: which one decides (the rule), what crosses between the judge and the contestant, and the
in-process mode for tests that need the solution's process (BigCodeBench's unittest.mock.patch tests)."""

from __future__ import annotations

import pytest

from sandbox import Job, Limits
from sandbox.channel import ProtocolError, decode_plain, encode
from sandbox.isolation import choose, needs_fresh_judge, why_in_process
from tests.sandbox_cases.helpers import quiet_sandbox


@pytest.fixture(scope="module")
def sb():
    with quiet_sandbox(workers=2, limits=Limits(timeout_s=10, memory_mb=512, output_bytes=8192)) as box:
        yield box


# ------------------------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    "tests",
    [
        "def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n",
        "assert f(1) == 2\nassert sorted(f([3, 1])) == [1, 3]\n",
        "import unittest\nfrom solution import f\nclass T(unittest.TestCase):\n    def test_a(self):\n"
        "        self.assertEqual(f(1), 2)\n        with self.assertRaises(ValueError):\n            f(-1)\n",
        "import pytest\nfrom solution import f\n@pytest.mark.parametrize('x', [1, 2])\ndef test_f(x, capsys):\n"
        "    assert f(x) == pytest.approx(x + 1)\n",
        "import math, random, itertools\nassert math.isclose(f(0.5), 1.5)\nassert f.__name__ == 'f'\n",
    ],
)
def test_tests_that_only_call_the_solution_are_judged(tests):
    assert why_in_process("script", tests) is None
    assert choose("script", tests) == "judge"


@pytest.mark.parametrize(
    ("tests", "reason"),
    [
        ("from unittest.mock import patch\n", "imports from unittest.mock"),
        ("import unittest.mock\n", "imports unittest.mock"),
        ("from unittest import mock\n", "imports unittest.mock"),
        ("@patch('solution.requests.get')\ndef test(m): pass\n", "uses patch"),
        ("def test_x(monkeypatch):\n    pass\n", "takes the fixture monkeypatch"),
        ("import inspect\n", "imports inspect"),
        ("assert f.__code__.co_argcount == 1\n", "uses the attribute __code__"),
        ("import sys\nsys.stdin = None\n", "uses sys.stdin"),
        ("import tempfile\n", "imports tempfile"),
        ("import subprocess\n", "imports subprocess"),
        ("with self.assertLogs():\n    pass\n", "uses assertLogs"),
        ("print(globals())\n", "uses globals"),
        ("from solution import Base\nclass Special(Base):\n    pass\n", "subclasses Base of the solution's"),
        ("import solution as s\nclass Special(s.Base):\n    pass\n", "subclasses s.Base of the solution's"),
    ],
)
def test_tests_that_need_the_solutions_process_run_in_process(tests, reason):
    assert why_in_process("unittest", tests) == reason
    assert choose("unittest", tests) == "in_process"
    assert choose("unittest", tests, "judge") == "judge"  # a Job's isolation forces the mode


def test_stdio_is_always_judged_and_cannot_be_forced_in_process():
    assert choose("stdio", None) == "judge"
    with pytest.raises(ValueError, match="stdio jobs are always judged"):
        Job("print(1)", style="stdio", expected_stdout="1", isolation="in_process")
    with pytest.raises(ValueError, match="unknown isolation"):
        Job("x = 1", "assert x", isolation="sideways")


def test_tests_that_could_run_the_solutions_text_get_a_judge_of_their_own():
    assert needs_fresh_judge("script", "assert eval(f()) == 3\n")
    assert not needs_fresh_judge("script", "assert f() == 3\n")


# ------------------------------------------------------------------------------------------- the protocol


def test_plain_data_round_trips_with_its_exact_types():
    import collections
    import datetime
    import decimal
    import fractions

    values = [None, True, 0, -(2**100), 1.5, float("inf"), -0.0, 1 + 2j, "é\ud800", b"\x00\xff", bytearray(b"ab"),
              [1, [2, (3,)]], (1, "a"), {1: "a", (2, 3): [4]}, {1, 2}, frozenset({"x"}),
              decimal.Decimal("1.10"), fractions.Fraction(1, 3), datetime.date(2024, 1, 2),
              datetime.timedelta(days=1, seconds=3), collections.Counter("aab"), collections.deque([1, 2], 5),
              collections.OrderedDict(a=1), collections.defaultdict(list, {"a": [1]}), range(1, 9, 2)]  # fmt: skip
    import json

    for value in values:
        wire = json.loads(
            json.dumps(encode(value, lambda v, d: pytest.fail(f"not plain: {v!r}"))), object_hook=_hook
        )
        assert wire == value and type(wire) is type(value), value
    nan = json.loads(json.dumps(encode(float("nan"), None)))
    assert nan != nan


def _hook(obj: dict):
    plain = decode_plain(obj)
    if plain is NotImplemented:
        raise ProtocolError("a reference")
    return plain


def test_malformed_data_is_a_protocol_error():
    for bad in (
        {"d": [1]},
        {"c": ["x", 1]},
        {"i": "zz"},
        {"b": "%%%"},
        {"std": "nope", "x": 1},
        {"std": "range", "x": [1, 2, 0]},
    ):
        with pytest.raises((ProtocolError, ValueError)):
            _hook(bad)


def test_handles_equal_only_themselves_and_forward_everything_else(sb):
    code = (
        "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
        "    def __eq__(self, other):\n        return True\n    def __repr__(self):\n        return f'Point({self.x}, {self.y})'\n"
        "    def __add__(self, other):\n        return Point(self.x + other.x, self.y + other.y)\n"
        "    def __len__(self):\n        return 2\n    def __iter__(self):\n        return iter((self.x, self.y))\n"
        "    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n"
        "ORIGIN = Point(0, 0)\ndef origin():\n    return ORIGIN\n"
    )
    tests = (
        "p = Point(3, 4)\nassert p.norm() == 5.0 and p.x == 3\nassert list(p) == [3, 4] and len(p) == 2\n"
        "assert repr(p) == 'Point(3, 4)' and str(p + p) == 'Point(6, 8)'\n"
        "assert p != (3, 4) and not (p == Point(3, 4))\n"  # its own __eq__ says True: a handle equals only itself
        "assert origin() == origin() and origin() is ORIGIN\n"  # the same object of the solution's, the same handle
        "assert isinstance(p, Point) and not isinstance(3, Point)\np.x = 5\nassert p.norm() > 6\n"
        "assert {origin(): 1}[ORIGIN] == 1\n"
    )
    r = sb.run(code, tests)
    assert r.status == "passed" and r.isolation == "judge", (r.message, r.traceback)


def test_exceptions_come_back_by_class(sb):
    code = (
        "class ParseError(ValueError):\n    pass\nclass Fatal(ParseError, KeyError):\n    pass\n"
        "def parse(s):\n    if s == 'x':\n        raise ParseError('bad input: ' + s)\n"
        "    if s == 'k':\n        raise KeyError(s)\n    if s == 'f':\n        raise Fatal('very bad')\n"
        "    if s == 'j':\n        import json\n        json.loads('{')\n    return int(s)\n"
    )
    tests = (
        "import json, unittest\nimport solution\nclass T(unittest.TestCase):\n"
        "    def test_own(self):\n        with self.assertRaises(solution.ParseError) as caught:\n"
        "            solution.parse('x')\n        self.assertEqual(str(caught.exception), 'bad input: x')\n"
        "    def test_base(self):\n        with self.assertRaises(ValueError):\n            solution.parse('x')\n"
        "    def test_builtin(self):\n        with self.assertRaises(KeyError) as caught:\n            solution.parse('k')\n"
        "        self.assertIs(type(caught.exception), KeyError)\n        self.assertEqual(caught.exception.args, ('k',))\n"
        "    def test_subclass(self):\n        with self.assertRaises(solution.ParseError):\n            solution.parse('f')\n"
        "        with self.assertRaises(KeyError):\n            solution.parse('f')\n"
        "    def test_stdlib(self):\n        with self.assertRaises(json.JSONDecodeError):\n            solution.parse('j')\n"
        "    def test_value(self):\n        self.assertEqual(solution.parse('12'), 12)\n"
    )
    r = sb.run(code, tests, style="unittest")
    assert r.status == "passed", (r.failing_test, r.message, r.traceback)
    failing = sb.run(code, "assert parse('x') == 1\n")
    assert failing.status == "error" and failing.error_type == "ParseError"
    assert 'File "solution.py", line 7, in parse' in failing.traceback  # the solution's frames are shown


def test_callbacks_arguments_and_generators(sb):
    code = (
        "def apply(f, xs):\n    return [f(x) for x in xs]\n"
        "def rotate(nums, k):\n    k %= len(nums)\n    nums[:] = nums[-k:] + nums[:-k]\n"
        "def fill(grid):\n    for row in grid:\n        row[0] = 9\n"
        "def squares(n):\n    for i in range(n):\n        yield i * i\n"
        "def read(stream):\n    return stream.read().upper()\n"
    )
    tests = (
        "import io\nassert apply(lambda x: x * 10, [1, 2]) == [10, 20]\n"
        "nums = [1, 2, 3, 4, 5]\nrotate(nums, 2)\nassert nums == [4, 5, 1, 2, 3]\n"
        "grid = [[0, 0], [0, 0]]\nfirst = grid[0]\nfill(grid)\nassert grid == [[9, 0], [9, 0]] and first is grid[0]\n"
        "assert list(squares(3000)) == [i * i for i in range(3000)]\n"
        "assert read(io.StringIO('abc')) == 'ABC'\n"
    )
    r = sb.run(code, tests)
    assert r.status == "passed", (r.message, r.traceback)


def test_subclasses_of_builtins_compare_by_their_contents(sb):
    code = (
        "from collections import namedtuple\nfrom enum import IntEnum\nP = namedtuple('P', 'x y')\n"
        "class Color(IntEnum):\n    RED = 1\nclass Liar(str):\n    def __eq__(self, o):\n        return True\n"
        "    __hash__ = str.__hash__\ndef point():\n    return P(1, 2)\ndef color():\n    return Color.RED\n"
        "def liar():\n    return Liar('no')\n"
    )
    tests = (
        "p = point()\nassert p == (1, 2) and p.x == 1 and p.y == 2 and isinstance(p, tuple)\n"
        "assert color() == 1 and color().name == 'RED'\nassert liar() == 'no' and liar() != 'yes'\n"
    )
    r = sb.run(code, tests)
    assert r.status == "passed", (r.message, r.traceback)


def test_output_printed_during_calls_is_captured_when_the_tests_capture_it(sb):
    code = "def greet(name):\n    print('hello', name)\n    return len(name)\n"
    tests = (
        "import io, contextlib\nfrom solution import greet\n\ndef test_capsys(capsys):\n    greet('bob')\n"
        "    assert capsys.readouterr().out == 'hello bob\\n'\n\ndef test_redirect():\n    buffer = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buffer):\n        assert greet('al') == 2\n"
        "    assert buffer.getvalue() == 'hello al\\n'\n\ndef test_uncaptured():\n    assert greet('zed') == 3\n"
    )
    r = sb.run(code, tests, style="pytest")
    assert r.status == "passed" and r.isolation == "judge", (r.failing_test, r.message, r.traceback)
    assert r.stdout == "hello zed\n"  # output nobody captured reaches the result, as in-process


def test_the_solution_cannot_read_the_tests_objects(sb):
    code = (
        "def peek(key):\n    found = []\n    for name in ('__globals__', '__closure__', '__code__', '_private'):\n"
        "        try:\n            found.append(getattr(key, name))\n        except AttributeError as exc:\n"
        "            found.append(type(exc).__name__)\n    return found\n"
    )
    r = sb.run(code, "secret = 42\nassert peek(lambda v: v + secret) == ['AttributeError'] * 4\n")
    assert r.status == "passed", (r.message, r.traceback)


def test_a_failing_assert_in_a_callback_fails_the_test_even_if_the_solution_swallows_it(sb):
    code = "def solve(check):\n    for g in range(10):\n        try:\n            check(g)\n            return g\n        except AssertionError:\n            pass\n"
    r = sb.run(code, "def check(x):\n    assert x == 7\nassert solve(check) == 7\n")
    assert r.status == "failed" and r.error_type == "AssertionError"


def test_the_kept_judge_forgets_the_last_job(sb):
    first = sb.run(
        "def f():\n    return 1\n", "import random\nrandom.seed(1)\nGLOBAL_LEFT = 1\nassert f() == 1\n"
    )
    second = sb.run(
        "def f():\n    return 1\n", "assert 'GLOBAL_LEFT' not in globals() and f() == 1\n", isolation="judge"
    )
    assert first.status == second.status == "passed", (second.message, second.traceback)


# ------------------------------------------------------------------------- in-process (BigCodeBench-style)

BCB_CODE = '''import os
import requests_like
import json


def task_func(url, path):
    """Fetch JSON from `url` and save its "items" to `path`; return how many."""
    response = requests_like.get(url)
    items = json.loads(response.text)["items"]
    with open(path, "w") as f:
        json.dump(items, f)
    return len(items)


def list_dir(path):
    return sorted(os.listdir(path))
'''
BCB_MODULE = "def get(url):\n    raise ConnectionError('no network in tests')\n"
BCB_TESTS = """import unittest
from unittest.mock import MagicMock, patch
import os
import tempfile

from solution import list_dir, task_func


class TestCases(unittest.TestCase):
    @patch("solution.requests_like.get")
    def test_saves_items(self, mock_get):
        mock_get.return_value = MagicMock(text='{"items": [1, 2, 3]}')
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "out.json")
            self.assertEqual(task_func("http://x", path), 3)
            with open(path) as f:
                self.assertEqual(f.read(), "[1, 2, 3]")
        mock_get.assert_called_once_with("http://x")

    @patch("solution.os.listdir", return_value=["b", "a"])
    def test_listdir_patched(self, _):
        self.assertEqual(list_dir("/nowhere"), ["a", "b"])

    def test_real_error_without_patch(self):
        with self.assertRaises(ConnectionError):
            task_func("http://x", "/tmp/never")
"""


def _with_helper_module(code: str) -> str:
    # The helper module the solution imports, written next to it by the solution itself (one file per job).
    return (
        "import os, sys\nwith open(os.path.join(os.path.dirname(__file__), 'requests_like.py'), 'w') as _f:\n"
        f"    _f.write({BCB_MODULE!r})\nsys.path.insert(0, os.path.dirname(__file__))\n" + code
    )


def test_mock_patch_tests_run_in_process_and_pass(sb):
    r = sb.run(_with_helper_module(BCB_CODE), BCB_TESTS, style="unittest")
    assert r.isolation == "in_process"
    assert r.status == "passed" and r.tests_run == 3, (r.failing_test, r.message, r.traceback)


def test_mock_patch_tests_fail_a_wrong_solution_in_process(sb):
    wrong = BCB_CODE.replace("return len(items)", "return len(items) + 1").replace(
        "sorted(os.listdir", "list(os.listdir"
    )
    r = sb.run(_with_helper_module(wrong), BCB_TESTS, style="unittest")
    assert r.isolation == "in_process" and r.status == "failed" and r.tests_failed == 2


def test_mock_patch_of_builtins_and_pytest_monkeypatch_in_process(sb):
    code = "def ask():\n    return int(input('n? ')) * 2\n"
    unit = (
        "import unittest\nfrom unittest.mock import patch\nfrom solution import ask\n\nclass T(unittest.TestCase):\n"
        "    @patch('builtins.input', return_value='21')\n    def test_ask(self, _):\n        self.assertEqual(ask(), 42)\n"
    )
    pytest_tests = "from solution import ask\n\ndef test_ask(monkeypatch):\n    monkeypatch.setattr('builtins.input', lambda _: '5')\n    assert ask() == 10\n"
    for tests, style in ((unit, "unittest"), (pytest_tests, "pytest")):
        r = sb.run(code, tests, style=style)
        assert r.isolation == "in_process" and r.status == "passed", (style, r.message, r.traceback)


def test_a_lying_result_in_a_mock_test_is_tampering_in_process(sb):
    liar = "class Anything:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\ndef f():\n    return Anything()\n"
    tests = "import unittest\nfrom unittest.mock import patch\nfrom solution import f\nclass T(unittest.TestCase):\n    def test_f(self):\n        self.assertEqual(f(), 3)\n"
    r = sb.run(liar, tests, style="unittest")
    assert r.isolation == "in_process" and r.status == "tampering"
