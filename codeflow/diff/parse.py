"""tree-sitter -> the leaves of a Python source, with character offsets, block depth and enclosing statement.

This is the first stage of the diff pipeline: `parse_code(text)` gives plain data (`ParsedCode`) that the later
stages (match, classify, regions) read without touching tree-sitter again, except for `node` granularity, which
walks up from the kept leaf nodes.
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
_BLOCK, _SIMPLE, _COMPOUND = "block", "simple", "compound"
_ENTERING = (
    {"block": _BLOCK}
    | dict.fromkeys(SIMPLE_STATEMENTS, _SIMPLE)
    | dict.fromkeys(COMPOUND_STATEMENTS, _COMPOUND)
)
# Blocks whose first statement, when it is a lone string, is a docstring (as `ast.get_docstring` sees it).
_DOC_OWNERS = frozenset({"function_definition", "class_definition"})
_STRINGS = frozenset({"string", "concatenated_string"})
# the extras of tree-sitter-python: never keyed, comments kept as trivia
_EXTRAS = frozenset({"comment", "line_continuation"})

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class ParsedCode:
    """The leaves of one source text. Code leaves are parallel lists; comments and docstrings are trivia."""

    text: str
    parse_ok: bool
    # code leaves, in source order
    keys: list[tuple[str, bytes, int]] = field(default_factory=list)  # (type, text, block depth)
    starts: list[int] = field(default_factory=list)  # character offsets
    ends: list[int] = field(default_factory=list)
    stmt_starts: list[int] = field(default_factory=list)  # the enclosing statement region, characters
    stmt_ends: list[int] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)  # kept for `node` granularity
    # comments and docstrings: (kind, text) in source order, compared to tell comment-only edits apart
    trivia: list[tuple[str, bytes]] = field(default_factory=list)
    # char offset of each line's first character; line_starts[0] == 0
    line_starts: list[int] = field(default_factory=list)
    # byte offset -> char offset, None when the text is ASCII and the two coincide
    byte_table: np.ndarray | None = None

    def region(self, leaf: int) -> tuple[int, int]:
        """The statement region (start, end) of a code leaf, in characters."""
        return self.stmt_starts[leaf], self.stmt_ends[leaf]

    def char_offset(self, byte_offset: int) -> int:
        return byte_offset if self.byte_table is None else int(self.byte_table[byte_offset])


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


def _header_end(node: Node) -> int:
    """End byte of a compound statement's header: the last child before its first block, comments skipped."""
    previous = None
    for child in node.children:
        if child.type == "block":
            return previous.end_byte if previous is not None else node.start_byte
        if not child.is_extra:
            previous = child
    return node.end_byte


def parse_code(text: str) -> ParsedCode:
    """Parse `text` with tree-sitter-python and collect its leaves. Never raises on bad code."""
    data = text.encode("utf-8", errors="surrogatepass")
    tree = _parser().parse(data)
    root = tree.root_node
    parsed = ParsedCode(text=text, parse_ok=not root.has_error, line_starts=line_starts(text))

    trivia = parsed.trivia
    leaves: list[tuple[tuple[str, bytes, int], int, int, int, int, Node]] = []
    # The context of the current node: block depth, enclosing statement region (bytes), inside a docstring.
    # Entering a block or a statement changes it; `saved` keeps (tree level, previous context) for those
    # nodes only, restored when the walk climbs back above that level.
    depth, region_start, region_end, in_doc = 0, 0, len(data), False
    saved: list[tuple[int, int, int, int, bool]] = []
    level = 0
    cursor = tree.walk()
    while True:
        node = cursor.node
        typ = node.type
        if typ not in _ATOMIC and cursor.goto_first_child():
            level += 1
            entering = _ENTERING.get(typ)
            if entering is not None:
                saved.append((level, depth, region_start, region_end, in_doc))
                if entering is _BLOCK:
                    depth += 1
                elif entering is _SIMPLE:
                    region_start, region_end = node.start_byte, node.end_byte
                    if typ == "expression_statement" and _is_docstring(node):
                        in_doc = True
                else:
                    region_start, region_end = node.start_byte, _header_end(node)
            continue
        start, end = node.start_byte, node.end_byte
        if typ in _EXTRAS:
            if typ == "comment":
                trivia.append(("comment", data[start:end]))
            # line continuations are layout
        elif in_doc:
            trivia.append(("docstring", data[start:end]))
        elif end > start:  # MISSING nodes are zero-width; the parse is already marked not ok
            leaves.append(((typ, data[start:end], depth), start, end, region_start, region_end, node))
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                if leaves:
                    columns = [list(column) for column in zip(*leaves, strict=True)]
                    (
                        parsed.keys,
                        parsed.starts,
                        parsed.ends,
                        parsed.stmt_starts,
                        parsed.stmt_ends,
                        parsed.nodes,
                    ) = columns
                _to_chars(parsed, data)
                return parsed
            if saved and saved[-1][0] == level:
                _, depth, region_start, region_end, in_doc = saved.pop()
            level -= 1


def _is_docstring(statement: Node) -> bool:
    """A lone plain string that is the first statement of a module, class or function body.

    f-strings and bytes are not docstrings for Python (`ast.get_docstring`), so they stay code.
    """
    if statement.named_child_count != 1:
        return False
    string = statement.named_child(0)
    if string is None or string.type not in _STRINGS:
        return False
    first = string if string.type == "string" else string.named_child(0)
    prefix = first.child(0).text if first is not None and first.child_count else b""
    if prefix is None or any(c in prefix for c in b"fFbB"):
        return False
    parent = statement.parent
    if parent is None:
        return False
    if parent.type == "block":
        owner = parent.parent
        if owner is None or owner.type not in _DOC_OWNERS:
            return False
    elif parent.type != "module":
        return False
    for sibling in parent.named_children:
        if sibling.type == "comment":
            continue
        return sibling == statement
    return False


def _to_chars(parsed: ParsedCode, data: bytes) -> None:
    """Turn the byte offsets collected by the walk into character offsets of `parsed.text`."""
    if len(data) == len(parsed.text):  # ASCII: bytes and characters coincide
        return
    table = byte_to_char_table(data)
    parsed.byte_table = table
    for name in ("starts", "ends", "stmt_starts", "stmt_ends"):
        values = getattr(parsed, name)
        if values:
            setattr(parsed, name, table[np.asarray(values, dtype=np.int64)].tolist())
