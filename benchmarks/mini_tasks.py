"""A family of small Python tasks with tests, made by code: templates x random parameters.

Each template is a spec sentence, a short reference solution and an input generator, all with holes for its
parameters (constants such as `k`, a word, a default value). The expected value of every test is computed by
running the reference solution, so a test can never disagree with it. Solutions are one to five lines and
follow a few fixed shapes, so a model of a few million parameters trained on them can learn the shapes and
has to read the constants from the spec.

Splits (`make_splits`): `pretrain` (the language model's training text), `train` (the problems CodeFlow is
built on: the same templates, new parameters), `validation` (new parameters plus templates of its own) and
`heldout` (new parameters plus templates no other split has). An instruction appears in one split only.

    python benchmarks/mini_tasks.py OUT_DIR --seed 0      # writes OUT_DIR/{split}.jsonl and {split}_bench.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Params = dict[str, object]


@dataclass(frozen=True)
class Template:
    name: str  # also the entry point
    kind: str  # arithmetic, string, list, dict, edge
    args: str  # the parameter list of the function, e.g. "x" or "xs"
    spec: str  # what the function returns, with {holes} for the parameters
    body: str  # the function's body (indented by 4), with {holes}
    params: Callable[[random.Random], Params]
    inputs: Callable[[random.Random, Params], list[tuple]]  # argument tuples for the tests


def _word(rng: random.Random, length: int = 2) -> str:
    return "".join(rng.choice("abcdefgh") for _ in range(length))


def _ints(rng: random.Random, n: int) -> list[tuple]:
    return [(rng.randint(-20, 30),) for _ in range(n)]


def _lists(rng: random.Random, n: int, empty: bool = False) -> list[tuple]:
    rows = [([rng.randint(0, 9) for _ in range(rng.randint(1, 5))],) for _ in range(n)]
    return ([([],)] + rows[1:]) if empty else rows


def _texts(rng: random.Random, n: int, letters: str = "abcdefgh") -> list[tuple]:
    return [("".join(rng.choice(letters) for _ in range(rng.randint(1, 6))),) for _ in range(n)]


def _dicts(rng: random.Random, n: int, keys: list[str] | None = None) -> list[tuple]:
    rows = []
    for _ in range(n):
        pool = list(keys or []) + [_word(rng) for _ in range(3)]
        rng.shuffle(pool)
        rows.append(({key: rng.randint(0, 9) for key in pool[: rng.randint(1, 4)]},))
    return rows


def _k(lo: int, hi: int) -> Callable[[random.Random], Params]:
    return lambda rng: {"k": rng.randint(lo, hi)}


def _c(rng: random.Random) -> Params:
    return {"c": rng.choice("abcdefgh")}


T = Template
TEMPLATES: list[Template] = [
    # arithmetic
    T("add_k", "arithmetic", "x", "returns x plus {k}", "return x + {k}", _k(1, 40), lambda r, p: _ints(r, 3)),
    T("mul_k", "arithmetic", "x", "returns x times {k}", "return x * {k}", _k(2, 12), lambda r, p: _ints(r, 3)),
    T("sub_k", "arithmetic", "x", "returns x minus {k}", "return x - {k}", _k(1, 40), lambda r, p: _ints(r, 3)),
    T("mod_k", "arithmetic", "x", "returns the remainder of x divided by {k}", "return x % {k}", _k(2, 11),
      lambda r, p: _ints(r, 3)),
    T("div_k", "arithmetic", "x", "returns x divided by {k}, rounded down", "return x // {k}", _k(2, 9),
      lambda r, p: _ints(r, 3)),
    T("affine", "arithmetic", "x", "returns {a} times x plus {b}", "return {a} * x + {b}",
      lambda r: {"a": r.randint(2, 9), "b": r.randint(1, 20)}, lambda r, p: _ints(r, 3)),
    T("is_multiple", "arithmetic", "x", "returns True if x is divisible by {k}, else False",
      "return x % {k} == 0", _k(2, 9), lambda r, p: [(p["k"] * r.randint(-3, 5),), *_ints(r, 2)]),
    T("square_plus", "arithmetic", "x", "returns x squared plus {k}", "return x * x + {k}", _k(1, 30),
      lambda r, p: _ints(r, 3)),
    T("sum_from", "arithmetic", "n", "returns the sum of the integers from {k} to n inclusive",
      "return sum(range({k}, n + 1))", _k(0, 5), lambda r, p: [(r.randint(0, 15),) for _ in range(3)]),
    T("max_k", "arithmetic", "x", "returns the larger of x and {k}", "return max(x, {k})", _k(-5, 20),
      lambda r, p: _ints(r, 3)),
    # string
    T("repeat", "string", "s", "returns s repeated {k} times", "return s * {k}", _k(2, 5),
      lambda r, p: _texts(r, 3)),
    T("add_prefix", "string", "s", "returns s with '{w}' added at the front", "return '{w}' + s",
      lambda r: {"w": _word(r, 3)}, lambda r, p: _texts(r, 3)),
    T("add_suffix", "string", "s", "returns s with '{w}' added at the end", "return s + '{w}'",
      lambda r: {"w": _word(r, 3)}, lambda r, p: _texts(r, 3)),
    T("first_chars", "string", "s", "returns the first {k} characters of s", "return s[:{k}]", _k(1, 4),
      lambda r, p: _texts(r, 3)),
    T("last_chars", "string", "s", "returns the last {k} characters of s", "return s[-{k}:]", _k(1, 4),
      lambda r, p: _texts(r, 3)),
    T("count_char", "string", "s", "returns how many times '{c}' appears in s", "return s.count('{c}')", _c,
      lambda r, p: _texts(r, 3, "abcd" + str(p["c"]))),
    T("replace_char", "string", "s", "returns s with every '{c}' replaced by '{d}'",
      "return s.replace('{c}', '{d}')", lambda r: {"c": r.choice("abcd"), "d": r.choice("xyz")},
      lambda r, p: _texts(r, 3, "abcde")),
    T("starts_with", "string", "s", "returns True if s starts with '{c}', else False",
      "return s.startswith('{c}')", _c, lambda r, p: [(str(p["c"]) + "ab",), *_texts(r, 2)]),
    T("strip_char", "string", "s", "returns s without any '{c}' at either end", "return s.strip('{c}')", _c,
      lambda r, p: [(f"{p['c']}ab{p['c']}",), *_texts(r, 2)]),
    T("pad_left", "string", "s", "returns s padded on the left with '{c}' to length {k}",
      "return s.rjust({k}, '{c}')", lambda r: {"c": r.choice("*-#0"), "k": r.randint(3, 7)},
      lambda r, p: _texts(r, 3)),
    # list
    T("sum_gt", "list", "xs", "returns the sum of the numbers in xs that are greater than {k}",
      "return sum(x for x in xs if x > {k})", _k(0, 6), lambda r, p: _lists(r, 3, empty=True)),
    T("count_gt", "list", "xs", "returns how many numbers in xs are greater than {k}",
      "return sum(1 for x in xs if x > {k})", _k(0, 6), lambda r, p: _lists(r, 3, empty=True)),
    T("scale_list", "list", "xs", "returns a list of each number in xs times {k}",
      "return [x * {k} for x in xs]", _k(2, 9), lambda r, p: _lists(r, 3)),
    T("shift_list", "list", "xs", "returns a list of each number in xs plus {k}",
      "return [x + {k} for x in xs]", _k(1, 20), lambda r, p: _lists(r, 3)),
    T("filter_lt", "list", "xs", "returns a list of the numbers in xs that are less than {k}",
      "return [x for x in xs if x < {k}]", _k(1, 8), lambda r, p: _lists(r, 3, empty=True)),
    T("take", "list", "xs", "returns the first {k} numbers of xs", "return xs[:{k}]", _k(1, 4),
      lambda r, p: _lists(r, 3)),
    T("count_eq", "list", "xs", "returns how many times {k} appears in xs", "return xs.count({k})", _k(0, 9),
      lambda r, p: _lists(r, 3)),
    T("max_or", "edge", "xs", "returns the largest number in xs, or {d} when xs is empty",
      "return max(xs) if xs else {d}", lambda r: {"d": r.randint(-9, -1)}, lambda r, p: _lists(r, 3, True)),
    T("min_or", "edge", "xs", "returns the smallest number in xs, or {d} when xs is empty",
      "return min(xs) if xs else {d}", lambda r: {"d": r.randint(10, 99)}, lambda r, p: _lists(r, 3, True)),
    T("mean_or", "edge", "xs", "returns the average of xs, or {d} when xs is empty",
      "return sum(xs) / len(xs) if xs else {d}", lambda r: {"d": r.randint(0, 9)},
      lambda r, p: _lists(r, 3, True)),
    T("first_or", "edge", "xs", "returns the first number of xs, or {d} when xs is empty",
      "return xs[0] if xs else {d}", lambda r: {"d": r.randint(-9, -1)}, lambda r, p: _lists(r, 3, True)),
    T("last_or", "edge", "xs", "returns the last number of xs, or {d} when xs is empty",
      "return xs[-1] if xs else {d}", lambda r: {"d": r.randint(-9, -1)}, lambda r, p: _lists(r, 3, True)),
    # dict
    T("get_or", "dict", "d", "returns the value of key '{w}' in d, or {k} when the key is missing",
      "return d.get('{w}', {k})", lambda r: {"w": _word(r), "k": r.randint(-9, -1)},
      lambda r, p: _dicts(r, 3, [str(p["w"])])),
    T("keys_gt", "dict", "d", "returns the sorted list of keys of d whose value is greater than {k}",
      "return sorted(key for key, v in d.items() if v > {k})", _k(0, 6), lambda r, p: _dicts(r, 3)),
    T("sum_values", "dict", "d", "returns the sum of the values of d plus {k}",
      "return sum(d.values()) + {k}", _k(1, 20), lambda r, p: _dicts(r, 3)),
    T("count_values", "dict", "d", "returns how many values of d are equal to {k}",
      "return sum(1 for v in d.values() if v == {k})", _k(0, 9), lambda r, p: _dicts(r, 3)),
    T("scale_values", "dict", "d", "returns a dict with the keys of d and each value times {k}",
      "return {{key: v * {k} for key, v in d.items()}}", _k(2, 9), lambda r, p: _dicts(r, 3)),
    T("has_key", "dict", "d", "returns True if '{w}' is a key of d, else False", "return '{w}' in d",
      lambda r: {"w": _word(r)}, lambda r, p: _dicts(r, 3, [str(p["w"])])),
    # edge-case heavy, a few lines
    T("safe_div", "edge", "x, y", "returns x divided by y rounded down, or {d} when y is 0",
      "if y == 0:\n        return {d}\n    return x // y", lambda r: {"d": r.randint(-9, 0)},
      lambda r, p: [(r.randint(0, 30), 0), (r.randint(0, 30), r.randint(1, 5)), (r.randint(-9, 9), 3)]),
    T("safe_index", "edge", "xs", "returns the number at position {k} of xs, or None when xs is too short",
      "if len(xs) > {k}:\n        return xs[{k}]\n    return None", _k(0, 3), lambda r, p: _lists(r, 3, True)),
    T("sign_word", "edge", "x", "returns '{p}' if x is positive, '{n}' if x is negative, else '{z}'",
      "if x > 0:\n        return '{p}'\n    if x < 0:\n        return '{n}'\n    return '{z}'",
      lambda r: dict(zip("pnz", r.sample(["pos", "neg", "zero", "up", "down", "flat"], 3), strict=True)),
      lambda r, p: [(0,), (r.randint(1, 9),), (-r.randint(1, 9),)]),
    T("grade", "edge", "x", "returns '{a}' if x is at least {k}, else '{b}'",
      "if x >= {k}:\n        return '{a}'\n    return '{b}'",
      lambda r: {"k": r.randint(1, 20), **dict(zip("ab", r.sample(["yes", "no", "ok", "low", "hi"], 2),
                                                     strict=True))},
      lambda r, p: [(p["k"],), (int(p["k"]) - 1,), (r.randint(-5, 25),)]),
]  # fmt: skip

# Templates only one evaluation split has (the rest are shared by every split, with disjoint parameters).
VALIDATION_TEMPLATES = ("max_k", "last_chars", "filter_lt", "min_or", "has_key")
HELDOUT_TEMPLATES = ("square_plus", "strip_char", "count_eq", "last_or", "count_values", "grade")
SPLITS = ("pretrain", "train", "validation", "heldout")


def solution_code(template: Template, params: Params) -> str:
    body = template.body.format(**params)
    return f"def {template.name}({template.args}):\n    {body}\n"


def make_problem(template: Template, rng: random.Random) -> dict:
    """One problem in the toolkit's problems JSONL format, its tests computed by the reference solution."""
    params = template.params(rng)
    code = solution_code(template, params)
    namespace: dict = {}
    exec(code, namespace)  # our own template's code, to compute the expected values
    function = namespace[template.name]
    calls = []
    for args in template.inputs(rng, params):
        call = f"{template.name}({', '.join(repr(a) for a in args)})"
        calls.append((call, repr(function(*args))))
    example_call, example_value = calls[0]
    instruction = (
        f"Write a Python function `{template.name}({template.args})` that {template.spec.format(**params)}.\n"
        f"Example: {example_call} == {example_value}"
    )
    return {
        "id": "",  # set by the caller: split and index
        "instruction": instruction,
        "tests": "".join(f"assert {call} == {value}\n" for call, value in calls),
        "test_style": "script",
        "entry_point": template.name,
        "solution": code,
        "source": f"mini_tasks/{template.name}",
        "license": "MIT",
        "template": template.name,
        "kind": template.kind,
    }


def make_splits(seed: int, sizes: dict[str, int]) -> dict[str, list[dict]]:
    """Problems of every split, each instruction in one split only; `sizes` gives the count per split."""
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; the splits are {', '.join(SPLITS)}")
    rng = random.Random(seed)
    shared = [t for t in TEMPLATES if t.name not in VALIDATION_TEMPLATES + HELDOUT_TEMPLATES]
    own = {
        "validation": [t for t in TEMPLATES if t.name in VALIDATION_TEMPLATES],
        "heldout": [t for t in TEMPLATES if t.name in HELDOUT_TEMPLATES],
    }
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {}
    # Evaluation splits first, so that the large pretraining split cannot take their instructions.
    for split in ("heldout", "validation", "train", "pretrain"):
        wanted = sizes.get(split, 0)
        problems: list[dict] = []
        attempts = 0
        while len(problems) < wanted:
            attempts += 1
            if attempts > 200 * wanted + 1000:
                raise ValueError(f"{split}: only {len(problems)} distinct problems of {wanted} could be made")
            # Evaluation splits: a third of the problems from their own templates.
            pool = own[split] if split in own and rng.random() < 1 / 3 else shared
            problem = make_problem(rng.choice(pool), rng)
            if problem["instruction"] in seen:
                continue
            seen.add(problem["instruction"])
            problem["id"] = f"{split}/{len(problems)}"
            problems.append(problem)
        splits[split] = problems
    return {split: splits[split] for split in SPLITS if split in splits}


def benchmark_row(problem: dict) -> dict:
    """The problem as a `focal-dpo eval --benchmark FILE.jsonl` line: a prose prompt (evaluate with --chat)."""
    return {
        "task_id": problem["id"],
        "prompt": problem["instruction"],
        "tests": problem["tests"],
        "test_style": problem["test_style"],
        "entry_point": problem["entry_point"],
        "canonical_solution": problem["solution"],
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Written to a temporary file and renamed, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    tmp.replace(path)


def write_splits(out_dir: Path, splits: dict[str, list[dict]]) -> dict[str, Path]:
    """OUT_DIR/{split}.jsonl (problems) and OUT_DIR/{split}_bench.jsonl (benchmark) for each split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, problems in splits.items():
        write_jsonl(out_dir / f"{split}_bench.jsonl", [benchmark_row(p) for p in problems])
        write_jsonl(out_dir / f"{split}.jsonl", problems)
        written[split] = out_dir / f"{split}.jsonl"
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for the split files")
    parser.add_argument("--seed", type=int, default=0)
    for split, default in zip(SPLITS, (4000, 400, 200, 200), strict=True):
        parser.add_argument(f"--{split}", type=int, default=default, help=f"problems in {split}")
    args = parser.parse_args(argv)
    sizes = {split: getattr(args, split) for split in SPLITS}
    if any(n < 0 for n in sizes.values()):
        print("mini_tasks: split sizes must be 0 or more", file=sys.stderr)
        return 2
    try:
        written = write_splits(args.out, make_splits(args.seed, sizes))
    except ValueError as e:
        print(f"mini_tasks: {e}", file=sys.stderr)
        return 2
    for split, path in written.items():
        print(f"{split}: {sizes[split]} problems -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
