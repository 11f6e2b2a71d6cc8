"""`codeflow show`: one pair with D- and D+ highlighted, and the trajectory that produced it."""

from __future__ import annotations

import json
from pathlib import Path

from codeflow.pipeline.db import read_run_db

RED, GREEN, RESET = "\x1b[41;97m", "\x1b[42;30m", "\x1b[0m"


def highlight(text: str, spans: list[list[int]], color: str, enabled: bool) -> str:
    """Mark each span: with ANSI colours on a terminal, else with [- ... -] / {+ ... +} brackets."""
    opener, closer = (color, RESET) if enabled else (("[-", "-]") if color == RED else ("{+", "+}"))
    out, at = [], 0
    for start, end in spans:
        out += [text[at:start], opener, text[start:end], closer]
        at = end
    out.append(text[at:])
    return "".join(out)


def read_pair(run_dir: str | Path, index: int) -> dict:
    """Line `index` (0-based) of RUN_DIR/pairs.jsonl; the errors say how many there are."""
    path = Path(run_dir) / "pairs.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pairs file (run `codeflow build` first)")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not 0 <= index < len(lines):
        raise IndexError(f"{path} has {len(lines)} pairs; --pair must be 0..{len(lines) - 1}")
    return json.loads(lines[index])


def show(run_dir: str | Path, index: int, color: bool = False) -> str:
    pair = read_pair(run_dir, index)
    db = read_run_db(run_dir)
    try:
        attempts = db.attempts_of(pair["problem_id"])
    finally:
        db.close()
    out = [
        f"pair {index}: problem {pair['problem_id']}  ({pair['test_style']} tests)",
        "",
        pair["prompt"].strip(),
        "",
    ]
    out.append("trajectory:")
    for a in attempts:
        mark = ""
        if a["iteration"] == pair["rejected_iteration"]:
            mark = "  <- rejected"
        elif a["iteration"] == pair["chosen_iteration"]:
            mark = "  <- chosen"
        detail = " ".join(x for x in (a["error_type"], a["failing_test"]) if x)
        out.append(
            f"  iter {a['iteration']}: {a['status'] or 'not run'}{(' ' + detail) if detail else ''}{mark}"
        )
    out += ["", f"rejected (iteration {pair['rejected_iteration']}, D- marked):"]
    out.append(highlight(pair["rejected"], pair["rejected_spans"], RED, color))
    out += ["", f"chosen (iteration {pair['chosen_iteration']}, D+ marked):"]
    out.append(highlight(pair["chosen"], pair["chosen_spans"], GREEN, color))
    return "\n".join(out)
