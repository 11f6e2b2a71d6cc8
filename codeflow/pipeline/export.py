"""Write RUN_DIR/pairs.jsonl from the database, atomically: readers see the old file or the new, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from codeflow.pipeline.db import RunDB

# Exported answers are the code in one python fence; spans are shifted by the opening fence's length.
FENCE_OPEN = "```python\n"


def fenced(code: str) -> str:
    return FENCE_OPEN + code + ("" if code.endswith("\n") else "\n") + "```"


def write_pairs(db: RunDB, path: str | Path) -> Path:
    path = Path(path)
    records = db.pair_records()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pairs.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(record + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
