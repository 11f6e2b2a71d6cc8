"""Decide what kind of edit a pair is: identical, comment-only, whitespace-only, rename-only or semantic."""

from __future__ import annotations

import ast
import warnings

from codeflow.diff.match import LeafMatch
from codeflow.diff.parse import ParsedCode

IDENTICAL = "identical"
COMMENT_ONLY = "comment_only"
WHITESPACE_ONLY = "whitespace_only"
RENAME_ONLY = "rename_only"
SEMANTIC = "semantic"
KINDS = (SEMANTIC, COMMENT_ONLY, WHITESPACE_ONLY, RENAME_ONLY, IDENTICAL)

# Leaves whose change can leave the program's AST unchanged: redundant parentheses, a trailing comma, quote
# style, number spelling (0x10 / 16). Any other changed leaf makes the pair semantic without asking `ast`.
_LAYOUT_LEAVES = frozenset(
    {"(", ")", ",", ";", ":", "string_start", "string_content", "string_end", "integer", "float"}
)


def classify(before: ParsedCode, after: ParsedCode, match: LeafMatch) -> str:
    """The kind of the pair. Both sides are assumed to parse (`parse_ok`)."""
    if before.text == after.text:
        return IDENTICAL
    if not match.before_changed and not match.after_changed:
        return _non_code_kind(before, after)
    maybe_layout = _maybe_layout(before, after, match)
    maybe_rename = _maybe_rename(before, after)
    if not (maybe_layout or maybe_rename):
        return SEMANTIC
    trees = _parse_ast(before.text), _parse_ast(after.text)
    if trees[0] is None or trees[1] is None:
        return SEMANTIC
    for tree in trees:
        _strip_docstrings(tree)
        _forget_string_prefixes(tree)
    if same_tree(trees[0], trees[1]):
        return _non_code_kind(before, after)
    if maybe_rename:
        for tree in trees:
            _LocalRenamer().visit(tree)
        if same_tree(trees[0], trees[1]):
            return RENAME_ONLY
    return SEMANTIC


def same_tree(a: ast.AST, b: ast.AST) -> bool:
    """`ast.dump(a) == ast.dump(b)` for parsed trees, without building the dumps: it stops at the first
    difference. Like `ast.dump`, it compares node types and fields, and other values by `repr` (so `1` and
    `1.0`, or `0.0` and `-0.0`, differ); attributes (line numbers) are left out. A stack, not recursion:
    deeply nested expressions do not reach the recursion limit."""
    stack: list[tuple[object, object]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, ast.AST):
            stack.extend((getattr(x, name, None), getattr(y, name, None)) for name in x._fields)
        elif isinstance(x, list):
            if len(x) != len(y):  # type: ignore[arg-type]
                return False
            stack.extend(zip(x, y, strict=True))  # type: ignore[call-overload]
        elif x is not y and repr(x) != repr(y):
            return False
    return True


def _maybe_layout(before: ParsedCode, after: ParsedCode, match: LeafMatch) -> bool:
    """Cheap necessary condition for equal ASTs: only layout leaves changed, the same numbers, and the same
    string text once the changed pieces are joined (implicit concatenation `"a " "b"` -> `"a b"`; a prefix
    `u"a"` -> `"a"` changes only the string's opening leaf). Escapes (`"\\x41"` -> `"A"`) are left to `ast`."""
    numbers: list[list[bytes]] = [[], []]
    strings: list[list[bytes]] = [[], []]
    for side, (parsed, changed) in enumerate(((before, match.before_changed), (after, match.after_changed))):
        for i in changed:
            leaf_type, text, _ = parsed.keys[i]
            if leaf_type not in _LAYOUT_LEAVES:
                return False
            if leaf_type in ("integer", "float"):
                numbers[side].append(text)
            elif leaf_type == "string_content":
                strings[side].append(text)
    # numbers are evaluated only when every changed leaf is a layout leaf and their spellings differ
    if sorted(numbers[0]) != sorted(numbers[1]):
        values = [sorted(map(_number, side), key=repr) for side in numbers]
        if values[0] != values[1]:
            return False
    joined = b"".join(strings[0]), b"".join(strings[1])
    return joined[0] == joined[1] or b"\\" in joined[0] or b"\\" in joined[1]


def _number(text: bytes) -> object:
    try:
        return ast.literal_eval(text.decode())
    except (ValueError, SyntaxError):
        return text


# Parents of an identifier that may bind it (assignment targets, parameters, loop and `as` targets, imports,
# definitions, patterns). Loose on purpose: `x = y` puts both names under `assignment`; the AST decides.
_BINDING_PARENTS = frozenset(
    {
        "parameters",
        "lambda_parameters",
        "default_parameter",
        "typed_parameter",
        "typed_default_parameter",
        "list_splat_pattern",
        "dictionary_splat_pattern",
        "assignment",
        "augmented_assignment",
        "pattern_list",
        "tuple_pattern",
        "list_pattern",
        "tuple",
        "for_statement",
        "for_in_clause",
        "as_pattern",
        "as_pattern_target",
        "aliased_import",
        "dotted_name",
        "function_definition",
        "class_definition",
        "named_expression",
        "splat_pattern",
        "keyword_pattern",
        "case_pattern",
        "global_statement",
        "nonlocal_statement",
    }
)


def _maybe_rename(before: ParsedCode, after: ParsedCode) -> bool:
    """Same leaves at the same positions, except identifiers (same depth) renamed to names bound in the code.

    A name that is never bound (a called global such as `sorted`) cannot be a renamed local. Whether the
    renaming is consistent and touches only locals is left to the AST comparison: the same name can be a
    local in one place and an attribute or a keyword argument in another.
    """
    if len(before.keys) != len(after.keys):
        return False
    renamed_before: set[bytes] = set()
    renamed_after: set[bytes] = set()
    for (type_b, text_b, depth_b), (type_a, text_a, depth_a) in zip(before.keys, after.keys, strict=True):
        if type_b != type_a or depth_b != depth_a:
            return False
        if text_b != text_a:
            if type_b != "identifier":
                return False
            renamed_before.add(text_b)
            renamed_after.add(text_a)
    return _all_bound(before, renamed_before) and _all_bound(after, renamed_after)


def _all_bound(parsed: ParsedCode, names: set[bytes]) -> bool:
    unbound = set(names)
    for (leaf_type, text, _), node in zip(parsed.keys, parsed.nodes, strict=True):
        if leaf_type == "identifier" and text in unbound and node.parent is not None:
            if node.parent.type in _BINDING_PARENTS:
                unbound.discard(text)
                if not unbound:
                    return True
    return not unbound


def _non_code_kind(before: ParsedCode, after: ParsedCode) -> str:
    return COMMENT_ONLY if before.trivia != after.trivia else WHITESPACE_ONLY


def _parse_ast(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():  # invalid escapes in the code diffed are its business, not ours
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            return ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: null bytes in the source
        return None


def canonical_dump(text: str, rename_locals: bool = False) -> str | None:
    """`ast.dump` without docstrings and, with `rename_locals`, with function locals renamed in first-use order.

    First-use numbering makes the renaming one-to-one: `a - b` -> `b - a` gets different dumps.
    None when Python cannot parse the text.
    """
    tree = _parse_ast(text)
    if tree is None:
        return None
    _strip_docstrings(tree)
    _forget_string_prefixes(tree)
    if rename_locals:
        _LocalRenamer().visit(tree)
    return ast.dump(tree)


def _forget_string_prefixes(tree: ast.AST) -> None:
    """`u"a"` and `"a"` are the same string; `ast` keeps the `u` as the constant's `kind`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.kind = None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    del body[0]


_FUNCTION_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def interface_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """The parameters a caller can pass by keyword: renaming one changes how the function is called."""
    a = function.args
    return {arg.arg for arg in [*a.args, *a.kwonlyargs]}


def _bound_names(scope: ast.AST) -> set[str]:
    """Names a function or comprehension binds itself (Python's local-variable rule), globals excluded."""
    bound: set[str] = set()
    declared_outside: set[str] = set()
    if isinstance(scope, _FUNCTION_SCOPES):
        a = scope.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
            if arg is not None:
                bound.add(arg.arg)
        roots: list[ast.AST] = scope.body if isinstance(scope.body, list) else [scope.body]
    elif isinstance(scope, ast.ClassDef):
        roots = list(scope.body)
    else:
        roots = [g.target for g in scope.generators]  # type: ignore[attr-defined]
    stack = list(roots)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_outside.update(node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            stack.extend(node.decorator_list)
            continue  # its body is another scope
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return bound - declared_outside


class _LocalRenamer(ast.NodeVisitor):
    """Rename locals of functions, lambdas and comprehensions to <local0>, <local1>, ... in first-use order.

    A function's parameters that can be passed by keyword are not locals (callers name them); positional-only
    parameters, `*args` / `**kwargs` and lambda parameters are.
    """

    def __init__(self) -> None:
        # one frame per open scope: (scope id, names it binds, renamed?); class bodies bind names kept as they are
        self.frames: list[tuple[int, set[str], bool]] = []
        self.scopes_opened = 0
        self.placeholders: dict[tuple[int, str], str] = {}

    def _resolve(self, name: str) -> str:
        innermost = len(self.frames) - 1
        for index in range(innermost, -1, -1):
            scope_id, names, renamed = self.frames[index]
            if not renamed and index != innermost:
                continue  # functions do not see the names of an enclosing class body
            if name in names:
                if not renamed:
                    return name
                key = (scope_id, name)
                if key not in self.placeholders:
                    self.placeholders[key] = f"<local{len(self.placeholders)}>"
                return self.placeholders[key]
        return name

    def _scope(self, node: ast.AST, renamed: bool, kept: frozenset[str] | set[str] = frozenset()) -> None:
        self.scopes_opened += 1
        self.frames.append((self.scopes_opened, _bound_names(node) - kept, renamed))
        self.generic_visit(node)
        self.frames.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        node.name = self._resolve(node.name)
        # keyword-passable parameters are the function's interface, not locals: their names stay
        self._scope(node, True, interface_names(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        node.name = self._resolve(node.name)
        self._scope(node, False)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node, True)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda

    def visit_Name(self, node: ast.Name) -> None:
        node.id = self._resolve(node.id)

    def visit_arg(self, node: ast.arg) -> None:
        node.arg = self._resolve(node.arg)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            node.name = self._resolve(node.name)
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:
        if node.asname:
            node.asname = self._resolve(node.asname)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            node.name = self._resolve(node.name)
        self.generic_visit(node)

    visit_MatchStar = visit_MatchAs
