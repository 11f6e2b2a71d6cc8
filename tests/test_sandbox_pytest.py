"""The `pytest` test style: pytest-style test modules (as KodCode ships them) run by the sandbox's pytest subset."""

from __future__ import annotations

import sys
import types

import pytest

from sandbox import Job, pytest_style
from tests.sandbox_cases.helpers import quiet_sandbox

ADD = "def add(a, b):\n    return a + b\n"
SUB = "def add(a, b):\n    return a - b\n"
TESTS = """import pytest
from solution import add


@pytest.mark.parametrize("a, b, expected", [(1, 2, 3), (-1, 1, 0), pytest.param(2, 2, 4, id="twos")])
def test_add(a, b, expected):
    assert add(a, b) == expected


def test_add_rejects_strings_and_numbers():
    with pytest.raises(TypeError, match="unsupported|concatenate"):
        add(1, "x")


def test_floats():
    assert add(0.1, 0.2) == pytest.approx(0.3)


class TestAdd:
    def test_commutes(self):
        assert add(3, 4) == add(4, 3)
"""


@pytest.fixture(scope="module")
def sb():
    with quiet_sandbox() as box:
        yield box


def test_a_passing_module_runs_every_parametrized_case(sb):
    r = sb.run(ADD, TESTS, style="pytest")
    assert r.status == "passed", (r.message, r.traceback)
    assert r.tests_run == 6 and r.tests_failed == 0


def test_a_failing_case_is_named_as_pytest_names_it(sb):
    r = sb.run(SUB, TESTS, style="pytest")
    assert r.status == "failed" and r.error_type == "AssertionError"
    assert r.failing_test == "test_add[1-2-3]"
    assert r.message == "assert add(a, b) == expected"  # a bare assert: its line is the message
    assert 'File "test_solution.py", line 7, in test_add' in r.traceback
    assert "pytest_style" not in r.traceback  # the runner's own frames are not shown
    assert r.tests_failed == 5  # the 3 cases of test_add, test_floats and TestAdd::test_commutes


def test_a_raise_that_never_comes_fails(sb):
    tests = "import pytest\nfrom solution import add\n\ndef test_x():\n    with pytest.raises(ValueError):\n        add(1, 2)\n"
    r = sb.run(ADD, tests, style="pytest")
    assert r.status == "failed" and r.error_type == "Failed"
    assert r.message == "DID NOT RAISE <class 'ValueError'>" and r.failing_test == "test_x"


def test_fixtures_scopes_and_teardown_order(sb):
    tests = """import pytest
from solution import add

events = []


@pytest.fixture(scope="module")
def base():
    events.append("module setup")
    yield 10
    events.append("module teardown")


@pytest.fixture
def offset(base):
    events.append("function setup")
    yield base + 1
    events.append("function teardown")


def test_first(offset):
    assert add(offset, 1) == 12


def test_second(offset, base):
    assert add(offset, base) == 21


def test_order():
    assert events == ["module setup", "function setup", "function teardown", "function setup", "function teardown"]
"""
    r = sb.run(ADD, tests, style="pytest")
    assert r.status == "passed", (r.failing_test, r.message, r.traceback)
    assert r.tests_run == 3


def test_skip_skipif_and_xfail_follow_pytest(sb):
    tests = """import sys
import pytest
from solution import add


@pytest.mark.skip(reason="not today")
def test_skipped():
    assert add(1, 1) == 3


@pytest.mark.skipif(sys.version_info > (3,), reason="py3")
def test_skipped_if():
    assert False


@pytest.mark.xfail(reason="known bug")
def test_expected_failure():
    assert add(1, 1) == 3


def test_imperative_skip():
    pytest.skip("later")


def test_runs():
    assert add(1, 1) == 2
"""
    r = sb.run(ADD, tests, style="pytest")
    assert r.status == "passed" and r.tests_run == 5
    strict = "import pytest\nfrom solution import add\n\n@pytest.mark.xfail(strict=True)\ndef test_x():\n    assert add(1, 1) == 2\n"
    r = sb.run(ADD, strict, style="pytest")
    assert r.status == "failed" and "XPASS(strict)" in r.message


def test_builtin_fixtures_tmp_path_capsys_and_monkeypatch(sb):
    code = (
        "def save(path, text):\n    with open(path, 'w') as f:\n        f.write(text)\n"
        "def greet():\n    print('hello', input())\n"
    )
    tests = """from solution import greet, save


def test_save(tmp_path):
    target = tmp_path / "out.txt"
    save(target, "data")
    assert target.read_text() == "data"


def test_greet(capsys, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda: "world")
    greet()
    assert capsys.readouterr().out == "hello world\\n"


def test_tmpdir(tmpdir):
    save(tmpdir.join("a.txt"), "x")
    assert tmpdir.join("a.txt").read() == "x"
"""
    r = sb.run(code, tests, style="pytest")
    assert r.status == "passed", (r.failing_test, r.message, r.traceback)
    assert r.tests_run == 3


def test_an_unsupported_feature_is_an_error_that_names_it(sb):
    tests = "from solution import add\n\ndef test_logs(caplog):\n    assert add(1, 1) == 2\n"
    r = sb.run(ADD, tests, style="pytest")
    assert r.status == "error" and r.error_type == "UnsupportedPytestFeature"
    assert "caplog" in r.message and r.failing_test == "test_logs"


def test_unittest_classes_in_a_pytest_module_run_too(sb):
    tests = (
        "import unittest\nfrom solution import add\n\nclass TestAdd(unittest.TestCase):\n"
        "    def test_small(self):\n        self.assertEqual(add(1, 2), 3)\n"
        "    def test_wrong(self):\n        self.assertEqual(add(2, 2), 5)\n"
    )
    r = sb.run(ADD, tests, style="pytest")
    assert r.status == "failed" and r.failing_test == "TestAdd::test_wrong" and "4 != 5" in r.message


def test_tests_that_never_run_or_do_not_exist_do_not_pass(sb):
    deleted = "from solution import add\n\ndef test_a():\n    assert add(1, 2) == 0\n\ndel test_a\n"
    r = sb.run(ADD, deleted, style="pytest")
    assert r.status == "error" and r.error_type == "TestsNotRun" and r.failing_test == "test_a"
    none = "from solution import add\n\ndef helper():\n    assert add(1, 2) == 3\n"
    assert sb.run(ADD, none, style="pytest").error_type == "NoTests"


def test_a_lying_result_compared_with_approx_fails_judged_and_is_tampering_in_process(sb):
    liar = "class Near:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n\ndef add(a, b):\n    return Near()\n"
    r = sb.run(
        liar,
        "import pytest\nfrom solution import add\n\ndef test_x():\n    assert add(1, 2) == pytest.approx(3.5)\n",
        style="pytest",
    )
    assert r.status == "failed" and r.isolation == "judge"  # the judge sees a handle, equal only to itself
    tests = "import pytest\nfrom solution import add\n\ndef test_x():\n    assert add(1, 2) == pytest.approx(3.5)\n"
    r = sb.run(liar, tests, style="pytest", isolation="in_process")
    assert r.status == "tampering" and r.isolation == "in_process"


def test_run_many_accepts_pytest_jobs(sb):
    results = sb.run_many([Job(ADD, TESTS, style="pytest"), Job(SUB, TESTS, style="pytest")])
    assert [r.status for r in results] == ["passed", "failed"]


def _module(source: str) -> types.ModuleType:
    module = types.ModuleType("test_solution")
    exec(compile(source, "test_solution.py", "exec"), vars(module))
    return module


def test_collection_ids_and_order_match_pytest(monkeypatch):
    # The ids and order below are what `pytest --collect-only` prints for the same module (pytest 9).
    source = """import pytest

@pytest.mark.parametrize("x", [0, 1])
@pytest.mark.parametrize("y", [2, 3])
def test_stack(x, y):
    pass

@pytest.mark.parametrize("word, n", [("a", 1), ("é", None), (1.5, object())])
def test_values(word, n):
    pass

@pytest.fixture(params=[1, 2], ids=["one", "two"])
def level(request):
    return request.param

def test_level(level):
    pass

class TestThing:
    def test_value(self):
        pass
"""
    monkeypatch.setitem(sys.modules, "pytest", pytest_style.api())  # the module imports the sandbox's pytest
    module = _module(source)
    items = pytest_style._with_fixture_params(
        pytest_style.collect(module), pytest_style._Session(module, None)
    )
    ids = [item.id for item in items]
    assert ids == [
        "test_stack[2-0]", "test_stack[2-1]", "test_stack[3-0]", "test_stack[3-1]",
        "test_values[a-1]", "test_values[\\xe9-None]", "test_values[1.5-n2]",
        "test_level[one]", "test_level[two]",
        "TestThing::test_value",
    ]  # fmt: skip


def test_approx_follows_pytest_semantics():
    approx = pytest_style.approx
    assert 0.1 + 0.2 == approx(0.3)
    assert 1.0001 != approx(1.0)
    assert 1.0001 == approx(1.0, rel=1e-3)
    assert 1.5 == approx(1.0, abs=0.5) and 1.6 != approx(1.0, abs=0.5)
    assert [0.1 + 0.2, 2] == approx([0.3, 2]) and (1, 2) != approx([1, 2, 3])
    assert {"a": 0.1 + 0.2} == approx({"a": 0.3}) and {"b": 0.3} != approx({"a": 0.3})
    assert float("nan") != approx(float("nan")) and float("nan") == approx(float("nan"), nan_ok=True)
    assert 1 != approx(True) and True == approx(True)  # noqa: E712 - bools compare as bools, as in pytest
    assert "x" == approx("x") and float("inf") == approx(float("inf")) and 1e308 != approx(float("inf"))
    assert repr(approx(0.3)) == "0.3 ± 3.0e-07"
    with pytest.raises(TypeError):
        approx({1, 2})
