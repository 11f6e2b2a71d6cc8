"""tree-sitter -> the statements and leaves of a Python source, with character offsets and block depth.

This is the first stage of the diff pipeline: `parse_code(text)` gives plain data (`ParsedCode`) that the later
stages (match, classify, regions) read without touching tree-sitter again, except for `node` granularity and the
rename check, which look up from the kept leaf nodes.

Two levels, so that the diff pays for leaves only where the code changed: the statements (each keyed by its own
text and depth) come from a walk that never enters a statement; a statement's leaves are collected when the
match asks for them (`ParsedCode.collect_leaves`), which it does only for statements that differ and their
neighbours. `parse_code(text)` collects all of them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np
import tree_sitter_python
from tree_sitter import Language, Node, Parser

_LANGUAGE = Language(tree_sitter_python.language())
# A parser is not safe to share between threads (the pipeline may diff from a thread pool): one per thread.
_THREAD = threading.local()


def _parser() -> Parser:
    parser = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = Parser(_LANGUAGE)
    return parser


# Nodes whose text is one token although tree-sitter gives them children (escape sequences inside a string's
# content): their children do not cover their text, so they are treated as leaves.
_ATOMIC = frozenset({"string_content", "format_specifier"})

# A statement region is the whole node for simple statements, and the header (up to the block) for compound ones.
SIMPLE_STATEMENTS = frozenset(
    {
        "expression_statement",
        "return_statement",
        "pass_statement",
        "break_statement",
        "continue_statement",
        "raise_statement",
        "assert_statement",
        "import_statement",
        "import_from_statement",
        "future_import_statement",
        "global_statement",
        "nonlocal_statement",
        "delete_statement",
        "print_statement",
        "exec_statement",
        "type_alias_statement",
        "decorator",
    }
)
COMPOUND_STATEMENTS = frozenset(
    {
        "if_statement",
        "elif_clause",
        "else_clause",
        "for_statement",
        "while_statement",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "with_statement",
        "function_definition",
        "class_definition",
        "match_statement",
        "case_clause",
    }
)
# What the walk does on entering a node, by kind id (several ids share a name: `block` has two).
_OTHER, _BLOCK, _SIMPLE, _COMPOUND, _ATOM, _EXTRA = range(6)
_ROLE_BY_NAME = (
    {"block": _BLOCK, "comment": _EXTRA, "line_continuation": _EXTRA}
    | dict.fromkeys(SIMPLE_STATEMENTS, _SIMPLE)
    | dict.fromkeys(COMPOUND_STATEMENTS, _COMPOUND)
    | dict.fromkeys(_ATOMIC, _ATOM)
)
# indexed by kind id (ERROR is 65535): a bytes table is the cheapest lookup in the walk's inner loop
_NAMES = [_LANGUAGE.node_kind_for_id(kind) or "" for kind in range(_LANGUAGE.node_kind_count)]
_ROLES = bytes(_ROLE_BY_NAME.get(name, _OTHER) for name in _NAMES) + bytes(65536 - len(_NAMES))
_NAMES += ["ERROR"] * (65536 - len(_NAMES))
_DECORATED = _LANGUAGE.id_for_node_kind("decorated_definition", True)
# Blocks whose first statement, when it is a lone string, is a docstring (as `ast.get_docstring` sees it).
_DOC_OWNERS = frozenset(
    kind
    for kind in range(_LANGUAGE.node_kind_count)
    if _LANGUAGE.node_kind_for_id(kind) in ("function_definition", "class_definition")
)
_EXPRESSION_STATEMENT = _LANGUAGE.id_for_node_kind("expression_statement", True)
_STRINGS = frozenset({"string", "concatenated_string"})

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class ParsedCode:
    """The statements of one source text, the code leaves collected so far, and the trivia.

    A statement is a simple statement or the header of a compound one (`if start < last[1]:`, not its block),
    keyed by (kind id, block depth, text): two statements with equal keys have equal leaves. Leaves are
    parallel lists in source order, grouped by statement (`leaf_ranges`). A string literal that spans lines
    is cut into one leaf per line (each piece keeps its line break), so an edit of one line of a long literal
    changes one leaf. Comments and docstrings are trivia, never leaves.
    """

    text: str
    parse_ok: bool
    # statements, in source order; offsets in characters
    statement_keys: list[tuple[int, int, bytes]] = field(default_factory=list)  # (kind id, depth, text)
    statement_starts: list[int] = field(default_factory=list)
    statement_ends: list[int] = field(default_factory=list)
    statement_depths: list[int] = field(default_factory=list)
    statement_nodes: list[Node] = field(default_factory=list)
    # code leaves of the collected statements, in source order
    keys: list[tuple[str, bytes, int]] = field(default_factory=list)  # (type, text, block depth)
    starts: list[int] = field(default_factory=list)  # character offsets
    ends: list[int] = field(default_factory=list)
    statement_of: list[int] = field(default_factory=list)  # index into the statement lists
    nodes: list[Node] = field(default_factory=list)  # kept for `node` granularity and the rename check
    leaf_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # statement -> (first, end) leaf
    edge_statements: set[int] = field(default_factory=set)  # statements of which only the edge leaves are in
    # comments and docstrings: (kind, text), compared to tell comment-only edits apart
    trivia: list[tuple[str, bytes]] = field(default_factory=list)
    # char offset of each line's first character; line_starts[0] == 0
    line_starts: list[int] = field(default_factory=list)
    # byte offset -> char offset, None when the text is ASCII and the two coincide
    byte_table: np.ndarray | None = None
    data: bytes = b""  # the UTF-8 text tree-sitter parsed

    def region(self, leaf: int) -> tuple[int, int]:
        """The statement region (start, end) of a code leaf, in characters."""
        statement = self.statement_of[leaf]
        return self.statement_starts[statement], self.statement_ends[statement]

    def char_offset(self, byte_offset: int) -> int:
        return byte_offset if self.byte_table is None else int(self.byte_table[byte_offset])

    def collect_leaves(self, statements: list[int] | range, edges_only: set[int] | None = None) -> None:
        """Collect the leaves of these statements (ascending), replacing any collected before.

        Of the statements in `edges_only`, only the first and the last leaf: the neighbours of a changed
        stretch, where an insertion's neighbours and anchors are, need no more.
        """
        leaves: list[tuple[tuple[str, bytes, int], int, int, int, Node]] = []
        ranges: dict[int, tuple[int, int]] = {}
        edges_only = set(edges_only) if edges_only else set()
        for statement in statements:
            first = len(leaves)
            if statement in edges_only:
                _edge_leaves(self, statement, leaves)
            else:
                _statement_leaves(self, statement, leaves, self.trivia)
            ranges[statement] = (first, len(leaves))
        self.leaf_ranges, self.edge_statements = ranges, edges_only
        if not leaves:
            self.keys, self.starts, self.ends, self.statement_of, self.nodes = [], [], [], [], []
            return
        keys, starts, ends, statement_of, nodes = map(list, zip(*leaves, strict=True))
        if self.byte_table is not None:
            starts = self.byte_table[np.asarray(starts, dtype=np.int64)].tolist()
            ends = self.byte_table[np.asarray(ends, dtype=np.int64)].tolist()
        self.keys, self.starts, self.ends, self.statement_of, self.nodes = (
            keys,
            starts,
            ends,
            statement_of,
            nodes,
        )

    def statement_leaf_spans(self, statement: int) -> list[tuple[int, int]]:
        """(start, end) in characters of every leaf of a statement, whether collected or not."""
        if statement in self.leaf_ranges and statement not in self.edge_statements:
            first, end = self.leaf_ranges[statement]
            return list(zip(self.starts[first:end], self.ends[first:end], strict=True))
        leaves: list = []
        _statement_leaves(self, statement, leaves, [])
        spans = [(start, end) for _, start, end, _, _ in leaves]
        if self.byte_table is not None:
            spans = [(int(self.byte_table[s]), int(self.byte_table[e])) for s, e in spans]
        return spans


def line_starts(text: str) -> list[int]:
    """Character offset where each line begins (\\n, \\r\\n and \\r end a line, as in Python source)."""
    if "\r" in text:
        return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    # only \n: the running sum of line lengths, each plus its \n, computed in C
    return list(accumulate(map((1).__add__, map(len, text.split("\n")[:-1])), initial=0))


def byte_to_char_table(data: bytes) -> np.ndarray:
    """table[b] = index of the character that byte offset b starts (or len(text) at the end)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    # a UTF-8 continuation byte looks like 10xxxxxx; every other byte starts a character
    starts = (raw & 0xC0) != 0x80
    table = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum(starts, out=table[1:])
    return table


def parse_code(text: str, leaves: bool = True) -> ParsedCode:
    """Parse `text` with tree-sitter-python: its statements, trivia and (with `leaves`) all its code leaves.

    Never raises on bad code: `parse_ok` says whether tree-sitter found ERROR or MISSING nodes.
    """
    data = text.encode("utf-8", errors="surrogatepass")
    tree = _parser().parse(data)
    root = tree.root_node
    parsed = ParsedCode(text=text, parse_ok=not root.has_error, line_starts=line_starts(text), data=data)
    found = _statements(root, parsed.trivia)
    if found:
        kinds, depths, starts, ends, nodes = map(list, zip(*found, strict=True))
        parsed.statement_keys = [
            (k, d, data[s:e]) for k, d, s, e in zip(kinds, depths, starts, ends, strict=True)
        ]
        parsed.statement_depths, parsed.statement_nodes = depths, nodes
        if len(data) != len(text):  # not ASCII: bytes and characters differ
            table = parsed.byte_table = byte_to_char_table(data)
            starts = table[np.asarray(starts, dtype=np.int64)].tolist()
            ends = table[np.asarray(ends, dtype=np.int64)].tolist()
        parsed.statement_starts, parsed.statement_ends = starts, ends
    elif len(data) != len(text):
        parsed.byte_table = byte_to_char_table(data)
    if leaves:
        parsed.collect_leaves(range(len(parsed.statement_keys)))
    return parsed


def _statements(root: Node, trivia: list[tuple[str, bytes]]) -> list[tuple[int, int, int, int, Node]]:
    """(kind id, depth, start byte, end byte, node) of each statement, in source order; comments and
    docstrings outside statements go to `trivia`."""
    found: list[tuple[int, int, int, int, Node]] = []
    # module-level functions, not closures: two closures that call each other form a reference cycle, which
    # would keep the nodes (and so the whole tree) alive until the garbage collector runs
    _block_statements(root, 0, True, found, trivia)
    return found


def _block_statements(
    node: Node, depth: int, doc_owner: bool, found: list, trivia: list[tuple[str, bytes]]
) -> None:
    # a block's first statement is a docstring when it is a lone plain string and the block is a module's, a
    # function's or a class's
    first, roles, add = True, _ROLES, found.append
    for child in node.children:
        kind = child.kind_id
        role = roles[kind]
        if role == _EXTRA:
            if _NAMES[kind] == "comment":
                trivia.append(("comment", child.text))
            continue
        if first and doc_owner and kind == _EXPRESSION_STATEMENT and _is_docstring(child):
            trivia.append(("docstring", child.text))
            first = False
            continue
        first = False
        if role == _COMPOUND:
            _compound_statements(child, kind, depth, found, trivia)
        elif kind == _DECORATED:
            _block_statements(child, depth, False, found, trivia)  # its decorators, then the definition
        else:  # a simple statement (or, in broken code, whatever stands in a statement's place)
            add((kind, depth, child.start_byte, child.end_byte, child))


def _compound_statements(
    node: Node, kind: int, depth: int, found: list, trivia: list[tuple[str, bytes]]
) -> None:
    # the header runs up to its last leaf before the block; clauses (elif, except, ...) follow the block
    header_end, roles = -1, _ROLES
    for child in node.children:
        child_kind = child.kind_id
        role = roles[child_kind]
        if role == _EXTRA:
            if _NAMES[child_kind] == "comment":
                trivia.append(("comment", child.text))
        elif role == _BLOCK:
            if header_end >= 0:
                found.append((kind, depth, node.start_byte, header_end, node))
                header_end = -2  # the header is in
            _block_statements(child, depth + 1, kind in _DOC_OWNERS, found, trivia)
        elif role == _COMPOUND and header_end == -2:
            _compound_statements(child, child_kind, depth, found, trivia)
        elif header_end != -2:
            header_end = child.end_byte
    if header_end >= 0:  # no block (only in broken code)
        found.append((kind, depth, node.start_byte, header_end, node))


def _roots(parsed: ParsedCode, statement: int) -> list[Node]:
    """The nodes that hold a statement's leaves: itself, or a compound statement's header children."""
    node = parsed.statement_nodes[statement]
    if _ROLES[node.kind_id] != _COMPOUND:
        return [node]
    header_end = node.start_byte + len(parsed.statement_keys[statement][2])
    return [c for c in node.children if c.end_byte <= header_end and _ROLES[c.kind_id] != _EXTRA]


def _statement_leaves(parsed: ParsedCode, statement: int, leaves: list, trivia: list) -> None:
    """Append the leaves of one statement (a compound one's header only) to `leaves`, its comments to
    `trivia`."""
    depth = parsed.statement_depths[statement]
    data, names, roles = parsed.data, _NAMES, _ROLES
    append = leaves.append
    for root in _roots(parsed, statement):
        cursor = root.walk()  # a cursor made on a node never leaves it
        while True:
            node = cursor.node
            kind = node.kind_id
            role = roles[kind]
            if role != _ATOM and cursor.goto_first_child():
                continue
            start, end = node.start_byte, node.end_byte
            if end > start:  # MISSING nodes are zero-width; the parse is already marked not ok
                if role == _OTHER or role == _BLOCK or role == _SIMPLE or role == _COMPOUND:
                    append(((names[kind], data[start:end], depth), start, end, statement, node))
                elif role == _EXTRA:
                    if names[kind] == "comment":
                        trivia.append(("comment", data[start:end]))
                else:  # the content of a string: one leaf per line when it spans lines, with its line break
                    cut, typ = start, names[kind]
                    while cut < end:
                        stop = data.find(b"\n", cut, end)
                        stop = end if stop < 0 else stop + 1
                        append(((typ, data[cut:stop], depth), cut, stop, statement, node))
                        cut = stop
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    break
            else:
                continue
            break


def _edge_leaves(parsed: ParsedCode, statement: int, leaves: list) -> None:
    """Append the first and the last leaf of a statement (one leaf if it has only one) to `leaves`."""
    node = parsed.statement_nodes[statement]
    depth, data = parsed.statement_depths[statement], parsed.data
    start = node.start_byte
    end = start + len(parsed.statement_keys[statement][2])
    edges = []
    for low, high, first in ((start, start, True), (end - 1, end, False)):
        leaf = node.descendant_for_byte_range(low, high)
        if leaf is None:
            continue
        # an escape sequence inside a string's content: the content is the leaf. Only in broken code can a
        # statement start or end inside a string's content, and `parent` is costly (a walk from the root)
        if not parsed.parse_ok and leaf.parent is not None and _ROLES[leaf.parent.kind_id] == _ATOM:
            leaf = leaf.parent
        leaf_start, leaf_end = leaf.start_byte, leaf.end_byte
        if _ROLES[leaf.kind_id] == _ATOM:  # the first or last line of a string's content
            if first:
                cut = data.find(b"\n", leaf_start, leaf_end)
                leaf_end = leaf_end if cut < 0 else cut + 1
            else:
                leaf_start = data.rfind(b"\n", leaf_start, leaf_end - 1) + 1 or leaf_start
        edges.append(
            ((_NAMES[leaf.kind_id], data[leaf_start:leaf_end], depth), leaf_start, leaf_end, statement, leaf)
        )
    if edges:
        leaves.append(edges[0])
    if len(edges) == 2 and edges[1][1] != edges[0][1]:
        leaves.append(edges[1])


def _is_docstring(statement: Node) -> bool:
    """A lone plain string (the statement is the first of a module, class or function body).

    f-strings and bytes are not docstrings for Python (`ast.get_docstring`), so they stay code.
    """
    if statement.named_child_count != 1:
        return False
    string = statement.named_child(0)
    name = _NAMES[string.kind_id] if string is not None else ""  # kind names by id: no str built per call
    if name not in _STRINGS:
        return False
    first = string if name == "string" else string.named_child(0)
    prefix = first.child(0).text if first is not None and first.child_count else b""
    return prefix is not None and not any(c in prefix for c in b"fFbB")
