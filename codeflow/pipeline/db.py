"""The run's state: one SQLite file in WAL mode holding every LLM call, attempt, execution, verdict and pair.

All SQL of the pipeline lives here, behind named methods; the rest of the pipeline passes plain dicts.
`llm_calls` has one row per call made (a call that failed and was made again by a later run is two rows), so
calls and HTTP requests add up across resumes. `coverage_runs` holds the extra sandbox runs of chosen versions
for `--min-coverage` (same shape as `executions`, kept apart so that the attempt statistics stay those of the
generation loop). Every stage writes its results back in short transactions, so a rerun of the same command
resumes where the last one stopped and a `kill -9` loses only the work in flight.

The schema's version is `PRAGMA user_version`; a run directory written by another version is refused with a
message saying what to do, rather than misread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 1: the unversioned schema before calls were kept one row per call
DB_NAME = "codeflow.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS run_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS problems (id TEXT PRIMARY KEY, ord INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bad_rows (location TEXT PRIMARY KEY, ord INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY, request_hash TEXT NOT NULL, stage TEXT NOT NULL, problem_id TEXT, iteration INTEGER,
    request TEXT NOT NULL, text TEXT, finish_reason TEXT, prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0, model TEXT, latency_s REAL, requests INTEGER NOT NULL DEFAULT 0,
    error_kind TEXT, error_message TEXT, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS llm_calls_by_hash ON llm_calls (request_hash);
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

ATTEMPT_COLUMNS = (
    "problem_id",
    "iteration",
    "request_hash",
    "answer_kind",
    "code",
    "tests",
    "status",
    "error_type",
    "message",
    "failing_test",
    "traceback",
)
CALL_COLUMNS = (
    "request_hash",
    "stage",
    "problem_id",
    "iteration",
    "request",
    "text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "model",
    "latency_s",
    "requests",
    "error_kind",
    "error_message",
    "created",
)
# Tables a merge copies from each shard as they are (outcomes, verdicts and pairs are per problem too).
SHARD_TABLES = (
    "problems",
    "bad_rows",
    "attempts",
    "executions",
    "coverage_runs",
    "outcomes",
    "verdicts",
    "pairs",
)
Statement = tuple[str, tuple]


class RunDirError(RuntimeError):
    """A run directory this version cannot use; the message says what to do."""


class RunDB:
    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(
                f"{self.path}: no run database here (run `codeflow build ... --out {self.path.parent}` first)"
            )
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
        self._check_version()
        self.commits = 0
        self.seconds = 0.0  # time spent in this class, for the benchmark's breakdown

    def _check_version(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if version == 0 and tables == 0:  # a new database
            self.conn.executescript(SCHEMA)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        found = version or 1
        if found != SCHEMA_VERSION:
            newer = found > SCHEMA_VERSION
            self.conn.close()
            raise RunDirError(
                f"{self.path} was written by {'a newer' if newer else 'an older'} codeflow (run database schema "
                f"{found}, this version reads {SCHEMA_VERSION}); build into a new --out directory"
                + ("" if newer else ", or finish this run with the codeflow version that started it")
            )

    def close(self) -> None:
        self.conn.close()

    # -- the two primitives ---------------------------------------------------------------------------------
    def _commit(self, statements: Iterable[Statement]) -> None:
        """Run the statements in one transaction."""
        t0 = time.perf_counter()
        with self.conn:
            self.conn.execute("BEGIN")
            for sql, params in statements:
                self.conn.execute(sql, params)
        self.seconds += time.perf_counter() - t0
        self.commits += 1

    def _rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        t0 = time.perf_counter()
        rows = self.conn.execute(sql, params).fetchall()
        self.seconds += time.perf_counter() - t0
        return rows

    # -- run metadata ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        rows = self._rows("SELECT value FROM run_meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_meta(self, items: dict[str, Any]) -> None:
        self._commit(
            ("INSERT OR REPLACE INTO run_meta (key, value) VALUES (?, ?)", (k, json.dumps(v)))
            for k, v in items.items()
        )

    def add_timings(self, seconds: dict[str, float]) -> None:
        """Add this run's seconds per part to the totals of the directory (one transaction)."""
        self._commit(
            (
                "INSERT INTO timings (stage, seconds) VALUES (?, ?) "
                "ON CONFLICT(stage) DO UPDATE SET seconds = seconds + excluded.seconds",
                (stage, value),
            )
            for stage, value in seconds.items()
        )

    def timings(self) -> dict[str, float]:
        return {
            r["stage"]: r["seconds"] for r in self._rows("SELECT stage, seconds FROM timings ORDER BY stage")
        }

    # -- problems and the rows that could not be read ---------------------------------------------------------
    def stored_problems(self) -> dict[str, str]:
        """Problem id -> its stored JSON, as first read."""
        return {r["id"]: r["data"] for r in self._rows("SELECT id, data FROM problems")}

    def store_problems(self, problems: list[tuple[str, int, str]]) -> None:
        """(id, position in the source, JSON) per problem: new ones are added, known ones get their position."""
        self._commit(
            (
                "INSERT INTO problems (id, ord, data) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET ord = excluded.ord",
                row,
            )
            for row in problems
        )

    def problems_in_order(self) -> list[str]:
        return [r["data"] for r in self._rows("SELECT data FROM problems ORDER BY ord, id")]

    def replace_bad_rows(self, rows: list[tuple[str, int, str]]) -> None:
        """(where, position, reason) of every source row that could not be converted, as read by this run."""
        self._commit(
            [("DELETE FROM bad_rows", ())]
            + [("INSERT OR REPLACE INTO bad_rows (location, ord, reason) VALUES (?, ?, ?)", r) for r in rows]
        )

    def bad_rows(self) -> list[tuple[str, str]]:
        return [
            (r["location"], r["reason"]) for r in self._rows("SELECT * FROM bad_rows ORDER BY ord, location")
        ]

    # -- llm calls and attempts -------------------------------------------------------------------------------
    def cached_answer(self, request_hash: str) -> dict | None:
        """The stored answer to this request (the first call that got one), or None."""
        rows = self._rows(
            "SELECT text, finish_reason, model FROM llm_calls WHERE request_hash = ? AND text IS NOT NULL "
            "ORDER BY id LIMIT 1",
            (request_hash,),
        )
        return dict(rows[0]) if rows else None

    def record_call(self, call: dict | None, attempt: dict | None = None) -> None:
        """A call made (its answer or its error) and the attempt its answer makes, in one transaction."""
        statements = []
        if call is not None:
            statements.append(_insert("llm_calls", CALL_COLUMNS, call))
        if attempt is not None:
            statements.append(_insert("attempts", ATTEMPT_COLUMNS, attempt, replace=True))
        if statements:
            self._commit(statements)

    def attempts(self) -> dict[str, list[dict]]:
        """Problem id -> its attempt rows, by iteration."""
        by_problem: dict[str, list[dict]] = {}
        for row in self._rows("SELECT * FROM attempts ORDER BY problem_id, iteration"):
            by_problem.setdefault(row["problem_id"], []).append(dict(row))
        return by_problem

    def attempts_of(self, problem_id: str) -> list[dict]:
        return [
            dict(r)
            for r in self._rows(
                "SELECT * FROM attempts WHERE problem_id = ? ORDER BY iteration", (problem_id,)
            )
        ]

    def record_execution(self, problem_id: str, iteration: int, verdict: dict, results: list[dict]) -> None:
        """The sandbox's verdict on an attempt (status, error_type, message, failing_test, traceback) and the
        Result of each of its jobs."""
        statements: list[Statement] = [
            (
                "UPDATE attempts SET status = ?, error_type = ?, message = ?, failing_test = ?, traceback = ? "
                "WHERE problem_id = ? AND iteration = ?",
                (
                    verdict["status"],
                    verdict["error_type"],
                    verdict["message"],
                    verdict["failing_test"],
                    verdict["traceback"],
                    problem_id,
                    iteration,
                ),
            )
        ]
        statements += _job_rows("executions", problem_id, iteration, results)
        self._commit(statements)

    # -- outcomes and the selection of pairs --------------------------------------------------------------------
    def replace_outcomes(self, outcomes: dict[str, tuple[str, str | None, int | None]]) -> None:
        self._commit(
            [("DELETE FROM outcomes", ())]
            + [
                (
                    "INSERT INTO outcomes (problem_id, status, reason, final_iteration) VALUES (?, ?, ?, ?)",
                    (pid, *o),
                )
                for pid, o in outcomes.items()
            ]
        )

    def outcomes(self) -> list[dict]:
        """Outcome rows in problem order."""
        return [
            dict(r)
            for r in self._rows(
                "SELECT o.* FROM outcomes o LEFT JOIN problems p ON p.id = o.problem_id ORDER BY p.ord, o.problem_id"
            )
        ]

    def replace_selection(
        self, verdicts: dict[str, tuple[str, str | None]], pairs: list[tuple[str, int, str]]
    ) -> None:
        """Every candidate's verdict and the exported pairs ((problem id, position, JSON line)), together."""
        self._commit(
            [("DELETE FROM verdicts", ()), ("DELETE FROM pairs", ())]
            + [
                ("INSERT INTO verdicts (problem_id, stage, reason) VALUES (?, ?, ?)", (pid, v[0], v[1]))
                for pid, v in verdicts.items()
            ]
            + [("INSERT INTO pairs (problem_id, ord, record) VALUES (?, ?, ?)", p) for p in pairs]
        )

    def verdicts(self) -> list[dict]:
        return [
            dict(r)
            for r in self._rows(
                "SELECT v.* FROM verdicts v LEFT JOIN problems p ON p.id = v.problem_id ORDER BY p.ord, v.problem_id"
            )
        ]

    def pair_records(self) -> list[str]:
        """The exported pairs' JSON lines, in problem order."""
        return [r["record"] for r in self._rows("SELECT record FROM pairs ORDER BY ord, problem_id")]

    # -- coverage runs ---------------------------------------------------------------------------------------------
    def coverage_results(self) -> dict[tuple[str, int], list[dict]]:
        """(problem id, iteration) -> the Result dicts of its coverage runs, by case."""
        results: dict[tuple[str, int], list[dict]] = {}
        for r in self._rows(
            "SELECT problem_id, iteration, result FROM coverage_runs ORDER BY problem_id, iteration, case_index"
        ):
            results.setdefault((r["problem_id"], r["iteration"]), []).append(json.loads(r["result"]))
        return results

    def record_coverage(self, problem_id: str, iteration: int, results: list[dict]) -> None:
        self._commit(_job_rows("coverage_runs", problem_id, iteration, results))

    # -- what `codeflow stats` reads -----------------------------------------------------------------------------
    def llm_usage_by_stage(self) -> dict[str, dict[str, int]]:
        usage = {}
        for r in self._rows(
            "SELECT stage, COUNT(*) AS calls, SUM(error_kind IS NOT NULL) AS errors, SUM(prompt_tokens) AS pt, "
            "SUM(completion_tokens) AS ct, SUM(finish_reason = 'length') AS truncated, "
            "SUM(requests) AS requests FROM llm_calls GROUP BY stage ORDER BY stage"
        ):
            usage[r["stage"]] = {
                "calls": r["calls"],
                "errors": r["errors"] or 0,
                "truncated": r["truncated"] or 0,
                "requests": r["requests"] or 0,
                "prompt_tokens": r["pt"] or 0,
                "completion_tokens": r["ct"] or 0,
            }
        return usage

    def call_errors(self) -> list[tuple[str, str]]:
        """(kind, message) of every failed call, oldest first."""
        return [
            (r["error_kind"], r["error_message"] or "")
            for r in self._rows(
                "SELECT error_kind, error_message FROM llm_calls WHERE error_kind IS NOT NULL ORDER BY id"
            )
        ]

    def attempt_kinds(self) -> dict[str, int]:
        return {
            r["k"]: r["n"]
            for r in self._rows("SELECT answer_kind AS k, COUNT(*) AS n FROM attempts GROUP BY k ORDER BY k")
        }

    def execution_summary(self, table: str = "executions") -> dict[str, Any]:
        if table not in ("executions", "coverage_runs"):
            raise ValueError(f"no job table {table!r}")
        totals = self._rows(f"SELECT COUNT(*) AS n, SUM(wall_ms) AS wall, SUM(cpu_ms) AS cpu FROM {table}")[0]
        status = {
            r["status"]: r["n"]
            for r in self._rows(f"SELECT status, COUNT(*) AS n FROM {table} GROUP BY status ORDER BY status")
        }
        return {
            "count": totals["n"],
            "wall_ms": totals["wall"] or 0,
            "cpu_ms": totals["cpu"] or 0,
            "status": status,
        }

    # -- merging shards ----------------------------------------------------------------------------------------
    def absorb(self, shard: Path) -> None:
        """Copy a shard's run database into this one (one transaction): every per-problem table as it is, its
        calls with new row ids, and its timings added."""
        RunDB(shard, create=False).close()  # refuses a shard of another schema version
        self.conn.execute("ATTACH DATABASE ? AS shard", (str(shard),))
        try:
            cols = ", ".join(CALL_COLUMNS)
            statements: list[Statement] = [
                (f"INSERT INTO main.{t} SELECT * FROM shard.{t}", ()) for t in SHARD_TABLES
            ]
            statements.append(
                (f"INSERT INTO main.llm_calls ({cols}) SELECT {cols} FROM shard.llm_calls ORDER BY id", ())
            )
            statements.append(
                (
                    "INSERT INTO main.timings (stage, seconds) SELECT stage, seconds FROM shard.timings WHERE true "
                    "ON CONFLICT(stage) DO UPDATE SET seconds = seconds + excluded.seconds",
                    (),
                )
            )
            self._commit(statements)
        finally:
            self.conn.execute("DETACH DATABASE shard")


def _insert(table: str, columns: tuple[str, ...], row: dict, replace: bool = False) -> Statement:
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    marks = ", ".join("?" for _ in columns)
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks})", tuple(row.get(c) for c in columns)


def _job_rows(table: str, problem_id: str, iteration: int, results: list[dict]) -> list[Statement]:
    return [
        (
            f"INSERT OR REPLACE INTO {table} (problem_id, iteration, case_index, status, wall_ms, cpu_ms, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (problem_id, iteration, i, r.get("status"), r.get("wall_ms"), r.get("cpu_ms"), json.dumps(r)),
        )
        for i, r in enumerate(results)
    ]


def open_run_db(run_dir: str | Path) -> RunDB:
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir}: a file, not a directory; choose a run directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunDB(run_dir / DB_NAME)


def read_run_db(run_dir: str | Path) -> RunDB:
    """An existing run's database, for stats and show; FileNotFoundError says how to make one."""
    path = Path(run_dir) / DB_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no run database here (run `codeflow build ... --out {run_dir}` first)"
        )
    return RunDB(path, create=False)
