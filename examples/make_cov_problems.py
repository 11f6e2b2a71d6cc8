"""Two problems sharing one reference `describe(n)`, one tested on two branches, one on all five
(the `--min-coverage` example of docs/pipeline.md)."""

import json

code = (
    'def describe(n):\n    if n < 0:\n        return "negative"\n    if n == 0:\n        return "zero"\n'
    '    if n < 10:\n        return "small"\n    if n < 100:\n        return "medium"\n    return "large"\n'
)
cases = {"negative": -5, "zero": 0, "small": 7, "medium": 42, "large": 500}


def tests(names):
    return "".join(f"assert describe({cases[k]}) == {k!r}\n" for k in names)


rows = [
    {
        "id": "describe_partly_tested",
        "instruction": "Write describe(n): 'negative', 'zero', 'small' (< 10), 'medium' (< 100) or 'large'.",
        "tests": tests(["negative", "zero"]),
        "solution": code,
    },
    {
        "id": "describe_fully_tested",
        "instruction": "Write describe(n) that names the size of n: 'negative', "
        "'zero', 'small' (under 10), 'medium' (under 100), else 'large'.",
        "tests": tests(cases),
        "solution": code,
    },
]
open("coverage_problems.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows))
