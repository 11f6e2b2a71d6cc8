"""`codeflow build --min-coverage`: hand-made pairs whose tests run little or all of the chosen code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from codeflow.cli import main as codeflow_main
from codeflow.pipeline.build import BuildConfig, BuildError, build
from codeflow.pipeline.db import ATTEMPT_COLUMNS, open_run_db
from codeflow.pipeline.stats import collect
from tests.pipeline_helpers import run_sql

DESCRIBE = """def describe(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    if n < 10:
        return "small"
    if n < 100:
        return "medium"
    return "large"
"""
SIGN = """def sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0
"""
PROGRAM = """n = int(input())
if n > 0:
    print("pos")
else:
    print("neg")
"""
# (id, style, tests, rejected code, chosen code): every chosen version passes its tests, every rejected one fails.
PAIRS = [
    # The tests reach 3 of the 10 executable lines.
    (
        "mostly_untested",
        "script",
        'assert describe(-5) == "negative"\n',
        DESCRIBE.replace("n < 0", "n > 0"),
        DESCRIBE,
    ),
    (
        "fully_tested",
        "script",
        "assert sign(3) == 1\nassert sign(-3) == -1\nassert sign(0) == 0\n",
        SIGN.replace("return -1", "return 1"),
        SIGN,
    ),
    # Each case runs 3 of the 4 executable lines; only their union covers all of them.
    (
        "stdio_cases",
        "stdio",
        [{"stdin": "3\n", "stdout": "pos\n"}, {"stdin": "-3\n", "stdout": "neg\n"}],
        PROGRAM.replace("n > 0", "n < 0"),
        PROGRAM,
    ),
]
SELF_CHECK_JOBS = (
    4  # the build's sandbox probes (a passing and a failing job of script and stdio), every build
)
ROOT = Path(__file__).resolve().parent.parent
COUNT_COVERAGE_RUNS = "SELECT problem_id, COUNT(*) AS n FROM coverage_runs GROUP BY problem_id"


@pytest.fixture
def finished_run(tmp_path):
    """A problems file and a run directory whose attempts are already stored: a failing then a passing version."""
    problems = tmp_path / "problems.jsonl"
    problems.write_text(
        "".join(
            json.dumps(
                {
                    "id": pid,
                    "instruction": f"Task {pid}: write the program the tests describe.",
                    "tests": tests,
                    "test_style": style,
                    "solution": chosen,
                }
            )
            + "\n"
            for pid, style, tests, _, chosen in PAIRS
        )
    )
    out = tmp_path / "run"
    db = open_run_db(out)
    for pid, _, tests, rejected, chosen in PAIRS:
        base = dict.fromkeys(ATTEMPT_COLUMNS) | {
            "problem_id": pid,
            "answer_kind": "code",
            "tests": json.dumps(tests),
        }
        db.record_call(None, base | {"iteration": 0, "code": rejected, "status": "failed"})
        db.record_call(None, base | {"iteration": 1, "code": chosen, "status": "passed"})
    db.close()
    return problems, out


def _build(problems, out, **options):
    config = BuildConfig(problems=str(problems), out=str(out), no_humaneval=True, progress=False, workers=2)
    for key, value in options.items():
        setattr(config, key, value)
    return build(config)


def _verdicts(out):
    return {r["problem_id"]: (r["stage"], r["reason"]) for r in run_sql(out, "SELECT * FROM verdicts")}


def _pair_ids(out):
    return [json.loads(line)["problem_id"] for line in (out / "pairs.jsonl").read_text().splitlines()]


def test_min_coverage_drops_the_pair_whose_tests_miss_most_of_the_chosen_code(finished_run):
    problems, out = finished_run
    plain = _build(problems, out)
    assert plain.calls == 0 and plain.pairs == 3  # every hand-made pair passes the static filters
    assert plain.sandbox_jobs == SELF_CHECK_JOBS  # no coverage run without --min-coverage
    assert "(off: --min-coverage not given)" in collect(out)["funnel"][3]["stage"]

    # Filters rerun on a finished run: only the coverage runs are new (1 + 1 + 2 stdio cases).
    filtered = _build(problems, out, min_coverage=0.8)
    assert filtered.calls == 0
    assert filtered.sandbox_jobs == SELF_CHECK_JOBS + 4
    assert filtered.pairs == 2 and filtered.verdicts["low_coverage"] == 1
    verdicts = _verdicts(out)
    assert verdicts["mostly_untested"] == ("low_coverage", "0.300 < 0.8")
    assert verdicts["fully_tested"][0] == verdicts["stdio_cases"][0] == "kept"  # stdio: union over the cases
    assert _pair_ids(out) == ["fully_tested", "stdio_cases"]

    stats = collect(out)
    funnel = stats["funnel"]
    coverage_row = funnel[3]
    assert coverage_row["stage"].startswith("after coverage") and coverage_row["stage"].endswith(">= 0.8")
    assert coverage_row["dropped"] == {"low_coverage": 1}
    for before, after in zip(funnel, funnel[1:], strict=False):
        assert before["count"] - sum(after["dropped"].values()) == after["count"]
    assert funnel[0]["count"] == 3 and funnel[-1]["count"] == stats["pairs"] == 2
    assert stats["executions"]["coverage_runs"] == 4
    assert stats["executions"]["count"] == 0  # the attempt executions are those of the generation loop only

    # A rerun, with the same or another threshold, measures nothing again.
    again = _build(problems, out, min_coverage=0.8)
    assert again.sandbox_jobs == SELF_CHECK_JOBS and _pair_ids(out) == ["fully_tested", "stdio_cases"]
    lenient = _build(problems, out, min_coverage=0.3)
    assert lenient.sandbox_jobs == SELF_CHECK_JOBS and lenient.pairs == 3


def test_an_interrupted_coverage_stage_measures_only_the_missing_problems(finished_run):
    problems, out = finished_run
    _build(problems, out, min_coverage=0.8)
    # A kill during the stage leaves some problems measured (one transaction each) and others not.
    run_sql(out, "DELETE FROM coverage_runs WHERE problem_id = ?", ("stdio_cases",))
    resumed = _build(problems, out, min_coverage=0.8)
    assert resumed.sandbox_jobs == SELF_CHECK_JOBS + 2  # the two stdio cases, nothing else
    assert _pair_ids(out) == ["fully_tested", "stdio_cases"]
    rows = run_sql(out, COUNT_COVERAGE_RUNS)
    assert {r["problem_id"]: r["n"] for r in rows} == {
        "mostly_untested": 1,
        "fully_tested": 1,
        "stdio_cases": 2,
    }


def test_min_coverage_on_the_command_line_and_its_bounds(finished_run, capsys):
    problems, out = finished_run
    common = ["build", str(problems), "--out", str(out), "--no-humaneval", "--no-progress", "--workers", "1"]
    assert codeflow_main([*common, "--min-coverage", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "low_coverage 1" in printed and "coverage runs (--min-coverage): 4" in printed
    with pytest.raises(SystemExit):
        codeflow_main([*common, "--min-coverage", "1.5"])
    assert "must be between 0 and 1" in capsys.readouterr().err
    with pytest.raises(BuildError, match="between 0 and 1"):
        _build(problems, out, min_coverage=-0.1)


def test_a_build_killed_during_the_coverage_stage_resumes_to_the_same_pairs(finished_run):
    problems, out = finished_run
    # Commits of a build here: settings, config, problems, bad rows, outcomes, then one per coverage run (6, 7, 8).
    cmd = [sys.executable, "-m", "tests.pipeline_faults", "--kill-after-commits", "6", "--"]
    cmd += ["build", str(problems), "--out", str(out), "--no-progress"]
    cmd += ["--no-humaneval", "--workers", "2", "--min-coverage", "0.8"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    stored = {r["problem_id"]: r["n"] for r in run_sql(out, COUNT_COVERAGE_RUNS)}
    assert len(stored) == 1  # the first problem measured, all its cases in one transaction
    resumed = _build(problems, out, min_coverage=0.8)
    assert resumed.sandbox_jobs == SELF_CHECK_JOBS + 4 - sum(stored.values())
    assert _pair_ids(out) == ["fully_tested", "stdio_cases"]
