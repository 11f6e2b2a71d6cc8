"""`python -m sandbox`: exit codes (0 passed, 1 a run that did not pass, 2 bad input), one-line errors naming the
file, --help with defaults; and a process using the Sandbox that gets SIGTERM leaves no traceback behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.sandbox_cases.helpers import HONEST_CODE, HONEST_TESTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sandbox(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def files(tmp_path):
    (tmp_path / "code.py").write_text(HONEST_CODE)
    (tmp_path / "tests.py").write_text(HONEST_TESTS)
    (tmp_path / "wrong.py").write_text("def add(a, b):\n    return a - b\n")
    return tmp_path


@pytest.mark.parametrize("missing", ["code", "tests", "both"])
def test_a_missing_file_is_exit_2_and_one_line_naming_it(files, missing):
    code = files / ("nope.py" if missing in ("code", "both") else "code.py")
    tests = files / ("none.py" if missing in ("tests", "both") else "tests.py")
    done = _sandbox("run", str(code), str(tests))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    named = code if missing in ("code", "both") else tests
    assert str(named) in lines[0] and "does not exist" in lines[0]
    assert done.stdout == ""


def test_a_directory_or_a_missing_tests_argument_is_bad_input(files):
    done = _sandbox("run", str(files), str(files / "tests.py"))
    assert (
        done.returncode == 2
        and len(done.stderr.strip().splitlines()) == 1
        and "is a directory" in done.stderr
    )
    done = _sandbox("run", str(files / "code.py"))
    assert done.returncode == 2 and "needs a TESTS file" in done.stderr


def test_a_run_that_fails_is_exit_1_and_one_that_passes_exit_0(files):
    failed = _sandbox("run", str(files / "wrong.py"), str(files / "tests.py"))
    assert failed.returncode == 1 and "status: failed" in failed.stdout
    passed = _sandbox("run", str(files / "code.py"), str(files / "tests.py"), "--json")
    assert (
        passed.returncode == 0
        and '"status": "passed"' in passed.stdout
        and '"isolation": "judge"' in passed.stdout
    )


def test_run_help_shows_defaults_and_where_tests_import_from():
    done = _sandbox("run", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "from solution import" in text and "unittest or pytest" in text
    for default in (
        "(default: script)",
        "(default: 10)",
        "(default: 2048)",
        "(default: 65536)",
        "(default: solution)",
    ):
        assert default in text, default


@pytest.mark.parametrize("use_bwrap", [True, False])
def test_sigterm_to_a_process_using_the_sandbox_prints_no_traceback(use_bwrap):
    # Short jobs with output, in a loop: a worker is usually writing a result when its host dies. The workers
    # inherit the host's stderr, so reading it to its end waits for every worker to be gone.
    if use_bwrap and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    program = (
        f"import sys\nsys.path.insert(0, {ROOT!r})\nfrom sandbox import Job, Limits, Sandbox\n"
        f"sb = Sandbox(workers=2, limits=Limits(timeout_s=30, output_bytes=100000), use_bwrap={use_bwrap}, notice=False)\n"
        "print('ready', flush=True)\n"
        "while True:\n    sb.run_many([Job('print(\"x\" * 60000)', 'assert True')] * 8)\n"
    )
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.4 + 0.15 * attempt)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM
        assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
