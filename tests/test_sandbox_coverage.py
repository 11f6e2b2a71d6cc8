"""The sandbox's trusted coverage mode: covered lines, the executable-line denominator, and the tamper check."""

from __future__ import annotations

import pytest

from sandbox import Job, Result
from sandbox.coverage import executable_lines
from tests.sandbox_cases.helpers import quiet_sandbox

SIGN = """def sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0
"""


@pytest.fixture(scope="module")
def sb():
    with quiet_sandbox() as box:
        yield box


def test_untested_branches_give_partial_coverage_and_the_right_lines(sb):
    r = sb.run(SIGN, "assert sign(3) == 1\n", coverage=True)
    assert r.status == "passed"
    assert r.executable_lines == [1, 2, 3, 4, 5, 6]
    assert r.covered_lines == [1, 2, 3]  # the def, the first test, its return; lines 4-6 never ran
    assert r.line_coverage == pytest.approx(0.5)


def test_tests_that_reach_every_line_give_full_coverage(sb):
    tests = "assert sign(3) == 1\nassert sign(-3) == -1\nassert sign(0) == 0\n"
    r = sb.run(SIGN, tests, coverage=True)
    assert r.status == "passed" and r.line_coverage == 1.0


def test_coverage_off_reports_nothing(sb):
    r = sb.run(SIGN, "assert sign(3) == 1\n")
    assert r.status == "passed"
    assert r.covered_lines is None and r.executable_lines is None and r.line_coverage is None


def test_a_tracer_installed_by_the_code_is_tampering_in_process_with_coverage_on(sb):
    def run(code: str):
        return sb.run(code, "assert sign(3) == 1\n", coverage=True, isolation="in_process")

    own = "import sys\nsys.settrace(lambda frame, event, arg: None)\n" + SIGN
    assert run(own).status == "tampering"
    # Wrapping the runner's tracer is another object, hence another hook.
    wrapped = "import sys\n_t = sys.gettrace()\nsys.settrace(lambda *a: _t(*a))\n" + SIGN
    r = run(wrapped)
    assert r.status == "tampering" and "trace or profile hook" in r.message
    threads = "import threading\nthreading.settrace(lambda *a: None)\n" + SIGN
    assert run(threads).status == "tampering"
    profile = "import sys\nsys.setprofile(lambda *a: None)\n" + SIGN
    assert run(profile).status == "tampering"
    # Judged, the tests run in another process: a tracer in the solution's process cannot touch them.
    judged = sb.run(own, "assert sign(3) == 1\n", coverage=True)
    assert judged.status == "passed" and judged.isolation == "judge" and judged.covered_lines == [1, 2, 3]


def test_removing_or_reinstalling_the_tracer_is_refused_as_tampering_in_process(sb):
    # The auditing event behind sys.settrace does not say what is installed, so every call is refused: a
    # removal could be the second half of an install-jump-remove trick (the adversarial corpus has it).
    tests = "assert sign(3) == 1\nassert sign(-3) == -1\nassert sign(0) == 0\n"
    honest = sb.run("import sys\n" + SIGN, tests, coverage=True, isolation="in_process")
    assert honest.status == "passed" and honest.line_coverage == 1.0
    removes = sb.run(
        "import sys\n" + SIGN + "sys.settrace(None)\n", tests, coverage=True, isolation="in_process"
    )
    assert removes.status == "tampering" and "sys.settrace" in removes.message
    reinstalls = "import sys\n_t = sys.gettrace()\nsys.settrace(None)\nsys.settrace(_t)\n" + SIGN
    r = sb.run(reinstalls, "assert sign(3) == 1\n", coverage=True, isolation="in_process")
    assert r.status == "tampering"


def test_a_line_first_reached_late_in_a_hot_loop_and_one_line_functions_are_recorded(sb):
    # The tracer stops line events for code whose lines have all been seen; nothing may be lost by that.
    code = (
        "def count(n):\n    total = 0\n    for i in range(n):\n        if i == n - 1:\n"
        "            total += 100\n        total += 1\n    return total\n\n\n"
        "square = lambda x: x * x\ndef one(): return 1\n"
    )
    tests = "assert count(2000) == 2100\nassert square(3) == 9\nassert one() == 1\n"
    r = sb.run(code, tests, coverage=True)
    assert r.status == "passed" and r.covered_lines == r.executable_lines == [1, 2, 3, 4, 5, 6, 7, 10, 11]
    r = sb.run(code, "assert count(3) == 103\n", coverage=True)
    assert r.covered_lines == [1, 2, 3, 4, 5, 6, 7, 10, 11]  # a short loop reaches every line too
    r = sb.run(code, "assert count(0) == 0\n", coverage=True)
    assert r.covered_lines == [1, 2, 3, 7, 10, 11]


def test_coverage_follows_threads_nested_functions_and_unittest_and_stdio_styles(sb):
    threaded = (
        "import threading\n\n\ndef run():\n    out = []\n\n    def work():\n        out.append(1)\n\n"
        "    t = threading.Thread(target=work)\n    t.start()\n    t.join()\n    return out\n"
    )
    r = sb.run(threaded, "assert run() == [1]\n", coverage=True)
    assert r.status == "passed" and r.line_coverage == 1.0  # line 8 ran in another thread

    unit = (
        "import unittest\nfrom solution import sign\n\n\nclass T(unittest.TestCase):\n"
        "    def test_zero(self):\n        self.assertEqual(sign(0), 0)\n"
    )
    r = sb.run(SIGN, unit, style="unittest", coverage=True)
    assert r.status == "passed" and r.covered_lines == [1, 2, 4, 6]

    program = "n = int(input())\nif n > 0:\n    print('pos')\nelse:\n    print('neg')\n"
    r = sb.run(program, style="stdio", stdin="3\n", expected_stdout="pos\n", coverage=True)
    assert r.status == "passed" and r.executable_lines == [1, 2, 3, 5] and r.covered_lines == [1, 2, 3]


def test_failing_and_unparsable_code_still_report_what_can_be_measured(sb):
    r = sb.run(SIGN.replace("return 1", "return 2"), "assert sign(3) == 1\n", coverage=True)
    assert r.status == "failed" and r.covered_lines == [1, 2, 3]
    broken = sb.run("def f(:\n    pass\n", "assert f() is None\n", coverage=True)
    assert (
        broken.status == "syntax_error" and broken.executable_lines is None and broken.line_coverage is None
    )


def test_run_many_passes_the_coverage_option_per_job(sb):
    jobs = [Job(SIGN, "assert sign(3) == 1\n", coverage=True), Job(SIGN, "assert sign(3) == 1\n")]
    with_cov, without = sb.run_many(jobs)
    assert with_cov.line_coverage == pytest.approx(0.5) and without.line_coverage is None


def test_executable_lines_skip_docstrings_comments_and_blank_lines():
    code = '"""Module."""\n\n# note\ndef f(x):\n    """Doc."""\n    return (x +\n            1)\n\nY = [i for i in range(3)]\n'
    # Line 7 holds the constant 1 (CPython attributes it there), so a full run covers it too.
    assert executable_lines(code) == [1, 4, 6, 7, 9]
    assert executable_lines("def f(:\n") is None


def test_coverage_fields_round_trip_through_json():
    r = Result(status="passed", covered_lines=[1, 3], executable_lines=[1, 2, 3, 4])
    back = Result.from_dict(r.to_dict())
    assert back == r and back.line_coverage == 0.5
    assert Result.from_dict({"status": "passed"}).line_coverage is None  # results stored before coverage


def test_cli_run_with_coverage_names_the_lines_not_run(tmp_path, capsys):
    from sandbox.__main__ import main

    (tmp_path / "sign.py").write_text(SIGN)
    (tmp_path / "tests.py").write_text("assert sign(3) == 1\nassert sign(0) == 0\n")
    assert main(["run", str(tmp_path / "sign.py"), str(tmp_path / "tests.py"), "--coverage"]) == 0
    assert "coverage: 83.3% of 6 executable lines; lines not run: 5" in capsys.readouterr().out
