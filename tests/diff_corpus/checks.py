"""Checks of the diff engine over real fix pairs, each against an independent reference.

- no raise: `diff_code` returns at every granularity;
- no changed code line missed: the code tokens of the lines left unmarked on both sides (Python's own
  `tokenize`, comments and docstrings left out, strings cut at line breaks, keyed with their indentation
  depth) can all be matched by one common subsequence of the two sides' tokens. First tried with one exact
  LCS (Myers' algorithm): its changed lines must be marked; when they are not, another alignment may still
  explain the unmarked lines (two equal lines, either of which is the changed one), which an exact
  weighted alignment decides. For semantic pairs at statement granularity;
- no unchanged statement marked: no D- / D+ line that is not an anchor holds text that the paper's line diff
  keeps (the same line stands unchanged on the other side) unless it holds a changed token or is a line of
  lone brackets of a statement changed on another line;
- no semantic pair leaves the engine with an empty D-.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import tokenize
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codeflow.diff import diff_code
from codeflow.diff.code_diff import GRANULARITIES
from codeflow.diff.line import line_diff
from codeflow.diff.parse import line_starts
from codeflow.diff.regions import lines_touched

_SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}


def load_pairs(path: Path) -> list[dict]:
    """The pairs of a JSONL file (gzipped when its name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _docstring_ranges(tree: ast.AST) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    e = body[0]
                    ranges.append(((e.lineno, e.col_offset), (e.end_lineno, e.end_col_offset)))
    return ranges


_COMPOUND_KEYWORDS = {
    "if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def", "class", "async", "match",
    "case",
}  # fmt: skip
PUNCTUATION = {"(", ")", "[", "]", "{", "}", ",", ":", ".", ";"}


def code_tokens(text: str) -> list[tuple[tuple, int]] | None:
    """(key, line) of each code token: key is (type, text piece, block depth). None if untokenizable.

    The depth counts INDENT tokens, plus one after the colon of a compound statement's header that has its
    body on the same line (`if not part: break`), so that splitting such a line is not a change. Strings are
    cut at line breaks, and an f-string into its literal pieces and the tokens of its expressions.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            tree = ast.parse(text)
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (SyntaxError, tokenize.TokenError, ValueError, IndentationError):
        return None
    docstrings = _docstring_ranges(tree)
    out: list[tuple[tuple, int]] = []
    depth = one_line_body = brackets = 0
    first_name = None  # the first token of the logical line
    for tok in tokens:
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.NEWLINE:
            one_line_body, first_name = 0, None
        if tok.type in _SKIPPED:
            continue
        if any(start <= tok.start and tok.end <= end for start, end in docstrings):
            continue
        if first_name is None:
            first_name = tok.string
        if tok.type == tokenize.STRING and _is_fstring(tok.string):
            out.extend(((kind, piece, depth + one_line_body), line) for kind, piece, line in _fstring(tok))
        else:
            for k, piece in enumerate(tok.string.split("\n")):
                out.append(((tok.type, piece, depth + one_line_body), tok.start[0] + k))
        if tok.type == tokenize.OP:
            brackets += tok.string in "([{"
            brackets -= tok.string in ")]}"
            if tok.string == ":" and brackets == 0 and first_name in _COMPOUND_KEYWORDS:
                one_line_body = 1  # what follows on this line is the body (nothing, if it ends the line)
    return out


def statement_lines(text: str) -> tuple[dict[int, int], set[int]]:
    """Each line's logical line (statement or header) by tokenize, and the lines holding only punctuation."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    statement_of: dict[int, int] = {}
    code_on: dict[int, list[str]] = {}
    statement = 0
    for tok in tokens:
        if tok.type == tokenize.NEWLINE:
            statement += 1
        elif tok.type not in _SKIPPED:
            for row in range(tok.start[0], tok.end[0] + 1):
                statement_of.setdefault(row, statement)
                code_on.setdefault(row, []).append(tok.string if tok.type == tokenize.OP else "code")
    punctuation_only = {row for row, strings in code_on.items() if all(s in PUNCTUATION for s in strings)}
    return statement_of, punctuation_only


def _is_fstring(text: str) -> bool:
    prefix = text[: len(text) - len(text.lstrip("rRbBuUfF"))]
    return "f" in prefix.lower()


def _fstring(tok: tokenize.TokenInfo) -> list[tuple[str, str, int]]:
    """(kind, text, line) pieces of an f-string token: literal text cut at line breaks, and the tokens of each
    replacement field's expression (Python 3.11's tokenize keeps an f-string as one token)."""
    text, row = tok.string, tok.start[0]
    prefix_length = len(text) - len(text.lstrip("rRbBuUfF"))
    quote = (
        text[prefix_length : prefix_length + 3]
        if text[prefix_length : prefix_length + 3] in ('"""', "'''")
        else text[prefix_length]
    )
    body_start, body_end = prefix_length + len(quote), len(text) - len(quote)
    pieces: list[tuple[str, str, int]] = [("FSTRING_START", text[:body_start], row)]
    literal, i = "", body_start

    def flush(at: int) -> None:
        nonlocal literal
        for k, part in enumerate(literal.split("\n")):
            if part:
                pieces.append(
                    ("FSTRING_MIDDLE", part, row + text.count("\n", 0, at) - literal.count("\n") + k)
                )
        literal = ""

    while i < body_end:
        char = text[i]
        if char in "{}" and text[i + 1 : i + 2] == char:
            literal += char * 2
            i += 2
        elif char == "{":
            flush(i)
            depth, j = 0, i + 1
            while j < body_end and not (depth == 0 and text[j] in "}!:"):
                depth += text[j] in "([{"
                depth -= text[j] in ")]}"
                j += 1
            expression = text[i + 1 : j]
            line = row + text.count("\n", 0, i + 1)
            try:
                inner = list(tokenize.generate_tokens(io.StringIO("(" + expression + ")").readline))
            except (tokenize.TokenError, SyntaxError):
                inner = []
            code = [t for t in inner if t.type not in _SKIPPED][1:-1]  # without the wrapping parentheses
            pieces.extend((t.type, t.string, line + t.start[0] - 1) for t in code)
            # the format spec and conversion, up to the closing brace, stay literal text
            close, nested = j, 0
            while close < body_end and (text[close] != "}" or nested):
                nested += text[close] == "{"
                nested -= text[close] == "}" and nested > 0
                close += 1
            literal = text[j:close]
            flush(close)
            i = close + 1
        else:
            literal += char
            i += 1
    flush(body_end)
    pieces.append(("FSTRING_END", text[body_end:], row + text.count("\n")))
    return pieces


def lcs_keep(a: list, b: list) -> tuple[set[int], set[int]]:
    """Indices of `a` and `b` inside one longest common subsequence (Myers' O((N+M)D) algorithm)."""
    n, m = len(a), len(b)
    v = {1: 0}
    trace = []
    for d in range(n + m + 1):
        trace.append(dict(v))
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v.get(k - 1, -1) < v.get(k + 1, -1)):
                x = v.get(k + 1, 0)
            else:
                x = v.get(k - 1, 0) + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x, y = x + 1, y + 1
            v[k] = x
            if x >= n and y >= m:
                return _backtrack(trace, a, b, n, m)
    raise AssertionError("unreachable")


def _backtrack(trace: list[dict], a: list, b: list, n: int, m: int) -> tuple[set[int], set[int]]:
    keep_a, keep_b = set(), set()
    x, y = n, m
    for d in range(len(trace) - 1, -1, -1):
        v = trace[d]
        k = x - y
        if d == 0:
            while x > 0 and y > 0:
                x, y = x - 1, y - 1
                keep_a.add(x)
                keep_b.add(y)
            break
        if k == -d or (k != d and v.get(k - 1, -1) < v.get(k + 1, -1)):
            prev_k = k + 1
        else:
            prev_k = k - 1
        prev_x = v.get(prev_k, 0)
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x, y = x - 1, y - 1
            keep_a.add(x)
            keep_b.add(y)
        x, y = prev_x, prev_y
    return keep_a, keep_b


def all_matchable(a: list, b: list, required_a: list[bool], required_b: list[bool]) -> bool:
    """Whether one common subsequence of a and b contains every required item of both.

    An alignment maximising the number of required items it matches (a weighted LCS, one numpy row at a
    time: f[i][j] = max(f[i-1][j], f[i-1][j-1] + w(i, j)), then a running maximum along j).
    """
    ids: dict = {}
    ka = np.array([ids.setdefault(x, len(ids)) for x in a], dtype=np.int64)
    kb = np.array([ids.setdefault(x, len(ids)) for x in b], dtype=np.int64)
    wb = np.array(required_b, dtype=np.int64)
    row = np.zeros(len(b) + 1, dtype=np.int64)
    for i in range(len(a)):
        gain = np.where(kb == ka[i], wb + int(required_a[i]), -1)
        candidate = np.maximum(row[1:], np.where(gain >= 0, row[:-1] + gain, -1))
        row = np.concatenate(([0], np.maximum.accumulate(candidate)))
    return int(row[-1]) == sum(required_a) + sum(required_b)


def changed_token_lines(before: str, after: str) -> tuple[set[int], set[int]] | None:
    """Lines holding a code token outside an exact token LCS, on each side (None if a side cannot tokenize)."""
    tb, ta = code_tokens(before), code_tokens(after)
    if tb is None or ta is None:
        return None
    keep_b, keep_a = lcs_keep([k for k, _ in tb], [k for k, _ in ta])
    lines_b = {line for i, (_, line) in enumerate(tb) if i not in keep_b}
    lines_a = {line for i, (_, line) in enumerate(ta) if i not in keep_a}
    return lines_b, lines_a


@dataclass
class CorpusReport:
    pairs: int = 0
    kinds: Counter = field(default_factory=Counter)
    raised: int = 0
    untokenizable: int = 0
    missed_pairs: int = 0
    missed_lines: int = 0
    unchanged_marked_pairs: int = 0
    unchanged_marked_lines: int = 0
    empty_d_minus: int = 0
    anchored: int = 0
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {
            "pairs": self.pairs,
            "kinds": dict(self.kinds),
            "raised": self.raised,
            "untokenizable": self.untokenizable,
            "missed_changed_lines": {"pairs": self.missed_pairs, "lines": self.missed_lines},
            "unchanged_lines_marked": {
                "pairs": self.unchanged_marked_pairs,
                "lines": self.unchanged_marked_lines,
            },
            "semantic_with_empty_d_minus": self.empty_d_minus,
            "semantic_with_anchor": self.anchored,
        }


def _anchor_lines(diff, text: str) -> set[int]:
    anchors = getattr(diff, "before_anchors", [])
    return set(lines_touched(anchors, line_starts(text)))


def check_pair(row: dict, report: CorpusReport) -> None:
    before, after = row["before"], row["after"]
    name = f"{row.get('repo')}@{row.get('commit', '')[:10]} {row.get('function')}"
    report.pairs += 1
    try:
        diffs = {g: diff_code(before, after, g) for g in GRANULARITIES}
    except Exception as error:  # noqa: BLE001 - the check counts any exception
        report.raised += 1
        report.problems.append(f"raised {type(error).__name__}: {error} in {name}")
        return
    d = diffs["statement"]
    report.kinds[d.kind] += 1
    if d.kind != "semantic":
        return
    if not d.before_spans:
        report.empty_d_minus += 1
        report.problems.append(f"empty D- in {name}")
    if getattr(d, "before_anchors", None):
        report.anchored += 1
    changed = changed_token_lines(before, after)
    if changed is None:
        report.untokenizable += 1
        return
    changed_before, changed_after = changed
    missed = sorted(changed_before - set(d.before_lines)), sorted(changed_after - set(d.after_lines))
    if missed[0] or missed[1]:
        tb, ta = code_tokens(before), code_tokens(after)
        marked_b, marked_a = set(d.before_lines), set(d.after_lines)
        if all_matchable(
            [k for k, _ in tb],
            [k for k, _ in ta],
            [line not in marked_b for _, line in tb],
            [line not in marked_a for _, line in ta],
        ):
            missed = [], []
    if missed[0] or missed[1]:
        report.missed_pairs += 1
        report.missed_lines += len(missed[0]) + len(missed[1])
        report.problems.append(f"missed lines D- {missed[0]} D+ {missed[1]} in {name}")
    line_before, line_after = line_diff(before, after)
    kept_before = set(range(1, before.count("\n") + 2)) - set(lines_touched(line_before, line_starts(before)))
    kept_after = set(range(1, after.count("\n") + 2)) - set(lines_touched(line_after, line_starts(after)))
    anchors = _anchor_lines(d, before)
    wrong_before = _unchanged_marked(before, set(d.before_lines) - anchors, kept_before, changed_before)
    wrong_after = _unchanged_marked(after, set(d.after_lines), kept_after, changed_after)
    if wrong_before or wrong_after:
        report.unchanged_marked_pairs += 1
        report.unchanged_marked_lines += len(wrong_before) + len(wrong_after)
        report.problems.append(f"unchanged lines marked D- {wrong_before} D+ {wrong_after} in {name}")


def _unchanged_marked(text: str, marked: set[int], kept: set[int], changed: set[int]) -> list[int]:
    """Marked lines that the line diff keeps and that hold no changed token, except a line of lone brackets
    (`]`, `),`) in a statement that changed on another line: it belongs to that statement, and matching it
    alone to a bracket of another statement is what the engine must not do."""
    suspects = (marked & kept) - changed
    if not suspects:
        return []
    statement_of, punctuation_only = statement_lines(text)
    changed_statements = {statement_of.get(line) for line in (marked | changed) - suspects}
    return sorted(
        line
        for line in suspects
        if not (line in punctuation_only and statement_of.get(line) in changed_statements)
    )


def check_corpus(rows: list[dict]) -> CorpusReport:
    report = CorpusReport()
    for row in rows:
        check_pair(row, report)
    return report
