"""The run's state: one SQLite file in WAL mode holding every LLM call, attempt, execution, verdict and pair.

`coverage_runs` holds the extra sandbox runs of chosen versions for `--min-coverage` (same shape as
`executions`, kept apart so that the attempt statistics stay those of the generation loop).
Every stage reads what it needs from here and writes its results back in short transactions, so a rerun of
the same command resumes where the last one stopped and a `kill -9` loses only the work in flight.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS run_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS problems (id TEXT PRIMARY KEY, ord INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_calls (
    request_hash TEXT PRIMARY KEY, stage TEXT NOT NULL, problem_id TEXT, iteration INTEGER,
    request TEXT NOT NULL, text TEXT, finish_reason TEXT, prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0, model TEXT, latency_s REAL, attempts INTEGER,
    error_kind TEXT, error_message TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    problem_id TEXT NOT NULL, iteration INTEGER NOT NULL, request_hash TEXT, answer_kind TEXT NOT NULL,
    code TEXT, tests TEXT, status TEXT, error_type TEXT, message TEXT, failing_test TEXT, traceback TEXT,
    PRIMARY KEY (problem_id, iteration));
CREATE TABLE IF NOT EXISTS executions (
    problem_id TEXT NOT NULL, iteration INTEGER NOT NULL, case_index INTEGER NOT NULL, status TEXT NOT NULL,
    wall_ms REAL, cpu_ms REAL, result TEXT NOT NULL, PRIMARY KEY (problem_id, iteration, case_index));
CREATE TABLE IF NOT EXISTS coverage_runs (
    problem_id TEXT NOT NULL, iteration INTEGER NOT NULL, case_index INTEGER NOT NULL, status TEXT NOT NULL,
    wall_ms REAL, cpu_ms REAL, result TEXT NOT NULL, PRIMARY KEY (problem_id, iteration, case_index));
CREATE TABLE IF NOT EXISTS outcomes (
    problem_id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, final_iteration INTEGER);
CREATE TABLE IF NOT EXISTS verdicts (
    problem_id TEXT PRIMARY KEY, stage TEXT NOT NULL, reason TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS pairs (problem_id TEXT PRIMARY KEY, ord INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timings (stage TEXT PRIMARY KEY, seconds REAL NOT NULL);
"""

# Test hook: SIGKILL this process right after the N-th commit, to prove that resumption survives kill -9.
KILL_ENV = "CODEFLOW_KILL_AFTER_COMMITS"


class RunDB:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
        self.conn.executescript(SCHEMA)
        self.commits = 0
        self._kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
        self.seconds = 0.0  # time spent in this class, for the benchmark's breakdown

    def close(self) -> None:
        self.conn.close()

    # -- transactions ---------------------------------------------------------------------------------------
    def write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        """Run the statements in one transaction."""
        t0 = time.perf_counter()
        with self.conn:
            self.conn.execute("BEGIN")
            for sql, params in statements:
                self.conn.execute(sql, params)
        self.seconds += time.perf_counter() - t0
        self.commits += 1
        if self._kill_after and self.commits >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        t0 = time.perf_counter()
        cur = self.conn.execute(sql, params)
        cur.row_factory = sqlite3.Row
        rows = cur.fetchall()
        self.seconds += time.perf_counter() - t0
        return rows

    # -- run metadata ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> object | None:
        rows = self.query("SELECT value FROM run_meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_meta(self, items: dict) -> None:
        self.write(
            ("INSERT OR REPLACE INTO run_meta (key, value) VALUES (?, ?)", (k, json.dumps(v)))
            for k, v in items.items()
        )

    def add_timing(self, stage: str, seconds: float) -> None:
        self.write(
            [
                (
                    "INSERT INTO timings (stage, seconds) VALUES (?, ?) "
                    "ON CONFLICT(stage) DO UPDATE SET seconds = seconds + excluded.seconds",
                    (stage, seconds),
                )
            ]
        )

    # -- llm calls ------------------------------------------------------------------------------------------
    def cached_response(self, request_hash: str) -> sqlite3.Row | None:
        rows = self.query(
            "SELECT * FROM llm_calls WHERE request_hash = ? AND text IS NOT NULL", (request_hash,)
        )
        return rows[0] if rows else None


def open_run_db(run_dir: str | Path) -> RunDB:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunDB(run_dir / "codeflow.db")
