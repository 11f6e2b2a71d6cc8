"""Test sources: what they define (counted by the server, never by the job) and their compiled, instrumented form.

The server compiles each distinct test source once (cached) and sends the code objects to the process that runs
the tests, marshalled: the judge gets them with an assert counter only; an in-process job also gets every
comparison routed through the runner's guard (see sandbox/runner.py).
"""

from __future__ import annotations

import ast
import functools
import marshal

from sandbox.pytest_style import test_ids as pytest_test_ids

COMPARE_NAME = "__sandbox_compare__"
COUNT_NAME = "__sandbox_count_assert__"
CHAIN_PREFIX = "__sandbox_chain_"
# The order of this tuple is the op index the guard receives.
COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_OP_INDEX = {op: i for i, op in enumerate(COMPARE_OPS)}


class _CountAsserts(ast.NodeTransformer):
    """Count every assert that runs (tests that check nothing must not pass)."""

    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        self.generic_visit(node)
        tick = ast.Expr(ast.Call(ast.Name(COUNT_NAME, ast.Load()), [], []))
        return [ast.copy_location(tick, node), node]


class _GuardComparisons(_CountAsserts):
    """Also route every comparison, single or chained, through the guard (in-process runs only).

    `a < b < c` becomes `guard(<, a, t := b) and guard(<, t, c)`: each middle operand is evaluated once, as Python
    does, and the chain still stops at the first false comparison.
    """

    def __init__(self) -> None:
        self.temps = 0
        self.scopes: list[str] = ["module"]

    def _scoped(self, node: ast.AST, kind: str) -> ast.AST:
        self.scopes.append(kind)
        try:
            return self.generic_visit(node)
        finally:
            self.scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._scoped(node, "class")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._scoped(node, "function")

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return self._scoped(node, "function")

    def _comprehension(self, node: ast.AST) -> ast.AST:
        return self._scoped(node, "comprehension")

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def _guard(self, op: ast.cmpop, left: ast.expr, right: ast.expr, node: ast.AST) -> ast.expr:
        call = ast.Call(
            ast.Name(COMPARE_NAME, ast.Load()), [ast.Constant(_OP_INDEX[type(op)]), left, right], []
        )
        return ast.copy_location(call, node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if not all(type(op) in _OP_INDEX for op in node.ops):
            return node  # `is` / `is not` compare identities, which no object can fake
        if len(node.ops) == 1:
            return self._guard(node.ops[0], node.left, node.comparators[0], node)
        # A walrus may not bind inside a comprehension in a class body: leave such a chain alone.
        if "comprehension" in self.scopes and "class" in self.scopes:
            return node
        parts, left = [], node.left
        for i, (op, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if i < len(node.ops) - 1:
                self.temps += 1
                name = f"{CHAIN_PREFIX}{self.temps}"
                right = ast.NamedExpr(ast.Name(name, ast.Store()), right)
                parts.append(self._guard(op, left, right, node))
                left = ast.Name(name, ast.Load())
            else:
                parts.append(self._guard(op, left, right, node))
        return ast.copy_location(ast.BoolOp(ast.And(), parts), node)


@functools.lru_cache(maxsize=512)
def compile_tests(tests: str, path: str, style: str, guard: bool) -> tuple[bytes, dict | None]:
    """(marshalled code objects, None) or (b"", the SyntaxError as a description), once per distinct source.

    Script tests become one code object per top-level statement, so the report can say how far they got.
    """
    from sandbox.outcomes import describe_exception

    try:
        tree = ast.parse(tests, path)
    except SyntaxError as exc:
        return b"", describe_exception(exc)

    def instrument(module: ast.Module) -> ast.Module:
        return ast.fix_missing_locations((_GuardComparisons() if guard else _CountAsserts()).visit(module))

    if style in ("unittest", "pytest"):
        code: tuple = (compile(instrument(tree), path, "exec"),)
    else:
        code = tuple(compile(instrument(ast.Module([s], [])), path, "exec") for s in tree.body)
    return marshal.dumps(code), None


def _base_names(node: ast.ClassDef) -> list[str]:
    return [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]


def unittest_test_ids(tests: str) -> set[str]:
    """`Class.test_method` for each test the source defines, following base classes within the module."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return set()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def methods(name: str, seen: frozenset = frozenset()) -> set[str]:
        node = classes.get(name)
        if node is None or name in seen:
            return set()
        own = {f.name for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
        found = {m for m in own if m.startswith("test")}
        for base in _base_names(node):
            found |= methods(base, seen | {name})
        return found

    def is_test_case(name: str, seen: frozenset = frozenset()) -> bool:
        node = classes.get(name)
        if node is None or name in seen:
            return name.endswith("TestCase")
        return any(is_test_case(b, seen | {name}) for b in _base_names(node))

    return {f"{c}.{m}" for c in classes if is_test_case(c) for m in methods(c)}


@functools.lru_cache(maxsize=512)
def expected_tests(style: str, tests: str | None) -> dict:
    """What must have run for a pass: the top-level test statements, or the named unittest / pytest tests."""
    if style == "script":
        try:
            return {"statements": len(ast.parse(tests or "").body)}
        except SyntaxError:
            return {"statements": -1}
    if style == "unittest":
        return {"ids": sorted(unittest_test_ids(tests or ""))}
    if style == "pytest":
        return {"ids": sorted(pytest_test_ids(tests or ""))}
    return {}
