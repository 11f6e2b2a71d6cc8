"""OUT/results.jsonl: one line per (problem, sample), appended batch by batch so a rerun resumes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class SampleResult:
    task_id: str
    sample: int
    completion: str
    status: str
    error_type: str | None = None
    failing_test: str | None = None
    message: str | None = None
    traceback: str | None = None


class ResultsFileError(ValueError):
    """A results.jsonl line that cannot be read; the message names the file and line."""


def read_results(path: Path) -> dict[tuple[str, int], SampleResult]:
    """Results keyed by (task_id, sample). A last line cut short by a crash is dropped from the file."""
    if not path.exists():
        return {}
    _drop_partial_last_line(path)
    results: dict[tuple[str, int], SampleResult] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                result = SampleResult(**row)
            except (json.JSONDecodeError, TypeError) as e:
                raise ResultsFileError(
                    f"{path}:{lineno}: not a result line ({e}); delete the line or use a new --out"
                ) from None
            results[(result.task_id, result.sample)] = result
    return results


def append_results(path: Path, results: list[SampleResult]) -> None:
    """Append whole lines and fsync, so a crash loses at most the batch being written."""
    if not results:
        return
    text = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in results)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _drop_partial_last_line(path: Path) -> None:
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Walk back to the previous newline; everything after it is a half-written line.
        pos = size - 1
        while pos > 0:
            step = min(4096, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                f.truncate(pos - step + nl + 1)
                return
            pos -= step
        f.truncate(0)
