"""Small helpers the pipeline tests share."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def run_sql(run_dir: str | Path, query: str, params: tuple = ()) -> list[sqlite3.Row]:
    """Rows of one SQL statement against a run directory's database (tests read and poke it directly)."""
    conn = sqlite3.connect(Path(run_dir) / "codeflow.db")
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            return conn.execute(query, params).fetchall()
    finally:
        conn.close()
