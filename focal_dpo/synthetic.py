"""Synthetic preference pairs built in code: chosen and rejected differ by one small "bug" edit.

For tests, benchmarks and a first run of `focal-dpo train` without any data. The right operator depends on the
prompt's wording, so a model has to read the prompt to prefer the chosen side.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# (word in the prompt, right operator, the bug's operator)
OPERATIONS = [
    ("sum", "+", "-"),
    ("difference", "-", "+"),
    ("product", "*", "+"),
    ("maximum", "max", "min"),
    ("minimum", "min", "max"),
]
NAMES = [
    "a",
    "b",
    "x",
    "y",
    "n",
    "m",
    "p",
    "q",
    "left",
    "right",
    "first",
    "second",
    "value",
    "other",
    "i",
    "j",
]


def bug_pair(rng: random.Random, index: int) -> dict:
    """One row with `chosen_spans` / `rejected_spans` marking the operator that differs."""
    word, right, wrong = rng.choice(OPERATIONS)
    a, b = rng.sample(NAMES, 2)
    name = f"{word}_of_{a}_{b}"
    prompt = f"Write a Python function {name}({a}, {b}) that returns the {word} of {a} and {b}."

    def body(op: str) -> tuple[str, tuple[int, int]]:
        head = f"```python\ndef {name}({a}, {b}):\n    return "
        expr = f"{op}({a}, {b})" if op.isalpha() else f"{a} {op} {b}"
        at = len(head) + (0 if op.isalpha() else len(a) + 1)
        return head + expr + "\n```", (at, at + len(op))

    chosen, chosen_span = body(right)
    rejected, rejected_span = body(wrong)
    return {
        "id": f"synthetic-{index}",
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_spans": [list(chosen_span)],
        "rejected_spans": [list(rejected_span)],
    }


def bug_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [bug_pair(rng, i) for i in range(n)]


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python3 -m focal_dpo.synthetic OUT.jsonl N_PAIRS")
    print(write_jsonl(bug_pairs(int(sys.argv[2])), sys.argv[1]))
