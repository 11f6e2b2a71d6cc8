"""kill -9 at several points of a build, then rerun: the same pairs.jsonl as an uninterrupted run, and no
request whose answer was already stored is sent again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from codeflow.pipeline.build import TIMING_COMMITS, BuildConfig, build

ROOT = Path(__file__).resolve().parent.parent
# a mix of test styles; every one of them has a reference solution and tests
SUBSET = [
    "running_max",
    "chunk_list",
    "merge_intervals",
    "balanced_brackets",
    "stack_class",
    "parse_duration",
    "stdio_sum_pairs",
    "stdio_grid_paths",
    "caesar_shift",
    "run_length_encode",
]
# each rerun is killed after this many commits (its first three only re-record the settings, the problems and
# the source's bad rows)
KILL_AFTER_COMMITS = [5, 7, 10, 13]
EXEC_TIMEOUT_S = "2"  # mutants that loop forever cost this much each


def _subset(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (ROOT / "examples/problems.jsonl").read_text().splitlines()]
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] in SUBSET))
    return path


def _stored_hashes(run_dir: Path) -> set[str]:
    db = run_dir / "codeflow.db"
    if not db.exists():
        return set()
    conn = sqlite3.connect(db)
    try:
        return {h for (h,) in conn.execute("SELECT request_hash FROM llm_calls WHERE text IS NOT NULL")}
    finally:
        conn.close()


def _run_cli(problems: Path, out: Path, log: Path, kill_after: int | None) -> int:
    faults = ["--request-log", str(log)] + (["--kill-after-commits", str(kill_after)] if kill_after else [])
    cmd = [
        sys.executable,
        "-m",
        "tests.pipeline_faults",
        *faults,
        "--",
        "build",
        str(problems),
        "--out",
        str(out),
        "--no-progress",
        "--seed",
        "7",
        "--exec-timeout",
        EXEC_TIMEOUT_S,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120).returncode


def _reference_build(problems, out):
    """The uninterrupted run every killed-and-resumed run must reproduce."""
    config = BuildConfig(
        problems=str(problems), out=str(out), seed=7, progress=False, exec_timeout_s=float(EXEC_TIMEOUT_S)
    )
    return build(config)


def test_killed_and_resumed_build_matches_an_uninterrupted_one(tmp_path):
    problems = _subset(tmp_path)
    reference = _reference_build(problems, tmp_path / "ref")
    expected = (tmp_path / "ref" / "pairs.jsonl").read_bytes()
    assert reference.pairs >= 5

    out, log = tmp_path / "killed", tmp_path / "requests.log"
    kills = 0
    for kill_after in [*KILL_AFTER_COMMITS, None]:
        stored_before = _stored_hashes(out)
        sent_before = len(log.read_text().splitlines()) if log.exists() else 0
        rc = _run_cli(problems, out, log, kill_after)
        sent_now = log.read_text().splitlines()[sent_before:] if log.exists() else []
        assert not stored_before & set(sent_now), "a request whose answer was stored was sent again"
        if rc == -signal.SIGKILL:
            kills += 1
            pairs_file = out / "pairs.jsonl"
            if pairs_file.exists():  # written atomically or not at all: every line is a whole record
                assert all(json.loads(line)["problem_id"] for line in pairs_file.read_text().splitlines())
        else:
            assert rc == 0 and kill_after is None
    assert kills == len(KILL_AFTER_COMMITS)  # every kill point fell inside the build
    assert (out / "pairs.jsonl").read_bytes() == expected
    # each request was answered and stored once, so across all runs nothing was sent twice once stored
    assert len(_stored_hashes(out)) == len(_stored_hashes(tmp_path / "ref"))


def test_kills_around_the_export_leave_the_pairs_whole_and_a_rerun_completes_them(tmp_path):
    """Killed right after the pairs are committed (before pairs.jsonl is written) and right after it is
    written: the file is absent or whole, and a rerun gives the uninterrupted result."""
    problems = _subset(tmp_path)
    reference = _reference_build(problems, tmp_path / "ref")
    expected = (tmp_path / "ref" / "pairs.jsonl").read_bytes()
    pairs_committed = reference.db_commits - TIMING_COMMITS  # then pairs.jsonl is written, then the timings
    for kill_after, file_written in ((pairs_committed, False), (pairs_committed + 1, True)):
        out, log = tmp_path / f"killed_{kill_after}", tmp_path / f"requests_{kill_after}.log"
        assert _run_cli(problems, out, log, kill_after) == -signal.SIGKILL
        assert (out / "pairs.jsonl").exists() == file_written
        if file_written:
            assert (out / "pairs.jsonl").read_bytes() == expected
        stored = _stored_hashes(out)
        assert _run_cli(problems, out, log, None) == 0
        assert (out / "pairs.jsonl").read_bytes() == expected
        sent = log.read_text().splitlines()
        assert len(sent) == len(set(sent)) and not stored - set(sent)  # all sent once, in the first run
