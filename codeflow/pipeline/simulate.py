"""An offline stand-in for an LLM: realistic bugs injected into a reference solution, fixed one per refinement.

For each problem a seeded generator proposes plans of 1 to 3 AST mutations (flipped comparison, off-by-one
constant, wrong operator, wrong variable, dropped guard, swapped arguments). The first plan whose mutant fails
its tests in the sandbox becomes the first answer; each refinement answer removes one more mutation, so the
last answer is the reference solution. Edits are made on the source text at the mutated node's position, so
the rest of the code keeps its formatting and comments. Answers are a pure function of (seed, problem, code
in the request) apart from the sandbox check, which makes runs reproducible and resumable.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass

FIRST_TRY_PASS_RATE = 0.25  # share of problems answered correctly at once (the paper saw 36.7%)
PLAN_TRIES = 6  # mutation plans tried per problem before giving up on making it fail
MUTATION_COUNTS = (1, 1, 2, 2, 3)

_COMPARE_FLIP = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
}
_BINOP_SWAP = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "+"),
    ast.FloorDiv: ("//", "*"),
    ast.Mod: ("%", "//"),
}
_BOOLOP_SWAP = {ast.And: ("and", "or"), ast.Or: ("or", "and")}


@dataclass(frozen=True)
class Mutation:
    kind: str  # flipped_comparison, off_by_one, wrong_operator, wrong_variable, dropped_guard, swapped_arguments
    start: int  # character offsets into the reference source
    end: int
    replacement: str


class _Offsets:
    """AST positions (line, UTF-8 byte column) -> character offsets into the source."""

    def __init__(self, source: str):
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def __call__(self, lineno: int, col_byte: int) -> int:
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col_byte].decode("utf-8", errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self(node.lineno, node.col_offset), self(node.end_lineno, node.end_col_offset)


def _operator_edit(source: str, gap: tuple[int, int], old: str, new: str) -> tuple[int, int, str] | None:
    """Replace the operator token `old` inside the text between two operands (which may hold parentheses)."""
    text = source[gap[0] : gap[1]]
    if old.isalpha():
        pattern = rf"\b{old}\b"
    else:  # `<` must not match inside `<=`, nor `/` inside `//`
        pattern = rf"(?<![<>=!*/%+-]){re.escape(old)}(?![<>=!*/%+-])"
    m = re.search(pattern, text)
    if m is None:
        return None
    return gap[0] + m.start(), gap[0] + m.end(), new


def _function_names(tree: ast.AST) -> dict[ast.AST, list[str]]:
    """Per function: the names of its parameters and assigned locals, in order of first appearance."""
    scopes: dict[ast.AST, list[str]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
            for node in ast.walk(fn):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
                    names.append(node.id)
            scopes[fn] = names
    return scopes


def find_mutations(source: str) -> list[Mutation]:
    """Every single-site bug this module knows how to inject into `source`, in source order."""
    tree = ast.parse(source)
    pos = _Offsets(source)
    found: list[Mutation] = []

    def add(kind: str, edit: tuple[int, int, str] | None) -> None:
        if edit is not None:
            found.append(Mutation(kind, *edit))

    for fn, names in _function_names(tree).items():
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
                others = [n for n in names if n != node.id]
                if others:
                    start, end = pos.span(node)
                    # the nearest other local: a plausible slip of the pen (i for j, lo for hi)
                    other = others[(names.index(node.id)) % len(others)]
                    add("wrong_variable", (start, end, other))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_FLIP:
            old, new = _COMPARE_FLIP[type(node.ops[0])]
            gap = (pos.span(node.left)[1], pos.span(node.comparators[0])[0])
            add("flipped_comparison", _operator_edit(source, gap, old, new))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            old, new = _BINOP_SWAP[type(node.op)]
            gap = (pos.span(node.left)[1], pos.span(node.right)[0])
            add("wrong_operator", _operator_edit(source, gap, old, new))
        elif isinstance(node, ast.BoolOp) and type(node.op) in _BOOLOP_SWAP and len(node.values) == 2:
            old, new = _BOOLOP_SWAP[type(node.op)]
            gap = (pos.span(node.values[0])[1], pos.span(node.values[1])[0])
            add("wrong_operator", _operator_edit(source, gap, old, new))
        elif (
            isinstance(node, ast.Constant)
            and type(node.value) is int
            and getattr(node, "end_col_offset", None) is not None
        ):
            start, end = pos.span(node)
            if source[start:end].isdigit():
                add("off_by_one", (start, end, str(node.value + 1 if node.value < 2 else node.value - 1)))
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and not node.keywords:
            a, b = node.args[0], node.args[1]
            if not any(isinstance(x, ast.Starred) for x in (a, b)):
                (a0, a1), (b0, b1) = pos.span(a), pos.span(b)
                if source[a0:a1] != source[b0:b1]:
                    add("swapped_arguments", (a0, b1, source[b0:b1] + source[a1:b0] + source[a0:a1]))
        for block in ("body", "orelse"):
            statements = getattr(node, block, None)
            if not isinstance(statements, list) or len(statements) < 2:
                continue
            for stmt in statements:
                if (
                    isinstance(stmt, ast.If)
                    and not stmt.orelse
                    and isinstance(stmt.body[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break))
                ):
                    start = pos(stmt.lineno, 0)
                    end = pos.starts[stmt.end_lineno] if stmt.end_lineno < len(pos.lines) else len(source)
                    add("dropped_guard", (start, end, ""))
    found.sort(key=lambda m: (m.start, m.end, m.kind))
    return found


def apply_mutations(source: str, mutations: list[Mutation]) -> str:
    for m in sorted(mutations, key=lambda m: m.start, reverse=True):
        source = source[: m.start] + m.replacement + source[m.end :]
    return source


def _overlaps(a: Mutation, b: Mutation) -> bool:
    return a.start < b.end and b.start < a.end


def mutation_plans(source: str, seed: int, problem_id: str) -> list[list[Mutation]]:
    """Candidate bug sets for one problem, in the order they are tried; each keeps its fix order (first is
    fixed first). Pure function of its arguments. An empty list means the first answer is correct."""
    rng = random.Random(f"simulate:{seed}:{problem_id}")
    if rng.random() < FIRST_TRY_PASS_RATE:
        return [[]]
    try:
        sites = find_mutations(source)
    except SyntaxError:
        return [[]]
    plans: list[list[Mutation]] = []
    for _ in range(PLAN_TRIES):
        if not sites:
            break
        wanted = rng.choice(MUTATION_COUNTS)
        chosen: list[Mutation] = []
        for m in rng.sample(sites, len(sites)):
            if len(chosen) == wanted:
                break
            if any(_overlaps(m, c) for c in chosen):
                continue
            mutant = apply_mutations(source, chosen + [m])
            try:
                ast.parse(mutant)
            except SyntaxError:
                continue
            chosen.append(m)
        if chosen and chosen not in plans:
            plans.append(chosen)
    return plans


def version(source: str, plan: list[Mutation], fixed: int) -> str:
    """The code after `fixed` of the plan's bugs have been fixed."""
    return apply_mutations(source, plan[fixed:])


def answer_text(code: str) -> str:
    return f"### solution.py\n```python\n{code.rstrip()}\n```\n"
