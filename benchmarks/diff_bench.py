"""Benchmark: `codeflow.diff` (statement mode + token masks of both sides) vs the published approach.

The published Target-DPO code diffs with `difflib.ndiff` over lines and finds each changed line's tokens by
re-encoding the text prefix up to that line. Both are timed here on the same pairs, on one CPU core, with
tokenization included:

    python benchmarks/diff_bench.py [--pairs 1200] [--baseline-pairs 200] [--tokenizer PATH]

The corpus: functions of 20-120 lines from the Python standard library, each edited the way an LLM fix edits
code (changed operators, constants, conditions, calls, an added guard, a statement moved into or out of a
block), mixed with comment and layout noise. Building it is not timed.
"""

from __future__ import annotations

import os

# one core, one thread: set before tokenizers / torch are imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import ast  # noqa: E402
import difflib  # noqa: E402
import io  # noqa: E402
import keyword  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
import tokenize  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeflow.diff import diff_code, spans_to_token_mask  # noqa: E402

DEFAULT_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizer"

# ---------------------------------------------------------------------------------------------- the corpus


def stdlib_functions(limit: int, seed: int) -> list[str]:
    """Dedented top-level and method functions of 20-120 lines from the standard library, in a seeded order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and "test" not in p.parts
    )
    random.Random(seed).shuffle(files)
    functions: list[str] = []
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = source.splitlines(keepends=True)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.end_lineno is None:
                continue
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if not 20 <= node.end_lineno - first + 1 <= 120:
                continue
            text = textwrap.dedent("".join(lines[first - 1 : node.end_lineno]))
            try:
                ast.parse(text)
            except SyntaxError:
                continue
            functions.append(text)
            if len(functions) >= limit:
                return functions
    return functions


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
    """Insert `if <param> is None: return None` as the function's first statement."""
    tree = ast.parse(text)
    function = tree.body[0]
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or not function.args.args:
        return None
    params = [a.arg for a in function.args.args if a.arg not in ("self", "cls")]
    if not params:
        return None
    first = function.body[0]
    lines = text.splitlines(keepends=True)
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


def build_corpus(pair_count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(rejected, chosen) pairs: the fixed function is the original, the rejected one carries the bugs."""
    rng = random.Random(seed)
    pairs = []
    for original in stdlib_functions(pair_count * 2, seed):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1200, help="corpus size (at least 1,000 for the goal)")
    parser.add_argument(
        "--baseline-pairs",
        type=int,
        default=200,
        help="pairs, spread over the corpus, timed for both methods",
    )
    parser.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER), help="a Hugging Face tokenizer folder")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of ours; the best one counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from transformers import AutoTokenizer

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)

    pairs = build_corpus(args.pairs, args.seed)
    stride = max(1, len(pairs) // args.baseline_pairs)
    subset = pairs[::stride][: args.baseline_pairs]
    diffs = [diff_code(r, c) for r, c in pairs]
    kinds = Counter(d.kind for d in diffs)
    print(
        f"corpus: {len(pairs)} pairs from stdlib functions, mean {statistics.mean(r.count(chr(10)) for r, _ in pairs):.0f} lines"
    )
    print(f"  kinds: {dict(kinds)}; parse failures: {sum(not d.parse_ok for d in diffs)}")
    print(
        f"  mean D- lines {statistics.mean(len(d.before_lines) for d in diffs):.1f}, D+ lines {statistics.mean(len(d.after_lines) for d in diffs):.1f}"
    )
    print(
        f"cpu affinity: {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 'n/a'}; load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    ours(pairs[:20], tokenizer)  # warm-up
    full = interleaved_rates({"ours": ours}, pairs, tokenizer, chunk=50, repeats=args.repeats)["ours"]
    print(f"codeflow.diff statement + token masks, {len(pairs)} pairs (best of {args.repeats} per chunk):")
    print(f"  {full[0]:8.1f} pairs/s by CPU time, {full[1]:8.1f} pairs/s by wall time")
    rates = interleaved_rates(
        {
            "ours": ours,
            "published": published,
            "lighter": lambda p, t: published(p, t, every_line=False),
        },
        subset,
        tokenizer,
    )
    labels = {
        "ours": "codeflow.diff statement + token masks",
        "published": "published: ndiff + prefix re-encoded at each line",
        "lighter": "lighter: ndiff + re-encoding around changed lines",
    }
    print(f"on the same {len(subset)} pairs, methods taking turns on chunks of 10:")
    print(f"  {'method':52s} {'CPU pairs/s':>12s} {'wall pairs/s':>13s} {'ratio (CPU)':>12s}")
    for name, (cpu_rate, wall_rate) in rates.items():
        ratio = rates["ours"][0] / cpu_rate
        print(f"  {labels[name]:52s} {cpu_rate:12.1f} {wall_rate:13.1f} {ratio:11.1f}x")
    fenced_subset = fenced(subset)
    trainer_rates = interleaved_rates(
        {"ours_fenced": ours_fenced, "published_trainer": published_trainer}, fenced_subset, tokenizer
    )
    print(f"as the trainers see them: the same {len(subset)} pairs as ```python fenced completions:")
    trainer_labels = {
        "ours_fenced": "codeflow.diff: extract_code + statement diff + masks",
        "published_trainer": "published trainer: fence scan, decode, 2 encodes/line",
    }
    for name, (cpu_rate, wall_rate) in trainer_rates.items():
        ratio = trainer_rates["ours_fenced"][0] / cpu_rate
        print(f"  {trainer_labels[name]:52s} {cpu_rate:12.1f} {wall_rate:13.1f} {ratio:11.1f}x")
    print("goals: >= 50x the published approach, >= 500 pairs/s on one core")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
