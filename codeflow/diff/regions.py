"""Changed leaves -> character spans, at the requested granularity; anchors for insertions; widening by K lines.

Each function gets the side whose spans it computes and the other side: an edit that only inserts leaves
into a statement (`return x` -> `return x + 1`) changes nothing on one side at leaf level, yet the statement
it lands in did change, so `statement` and `node` mark it there too.

An anchor marks where the other side inserted code that this side lacks: the error point of a fix that only
adds code (`anchor_spans`, used when no leaf of the rejected side changed).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from codeflow.diff.line import merge_spans
from codeflow.diff.parse import ParsedCode

Span = tuple[int, int]


@dataclass
class Side:
    """One side of a matched pair: its leaves, which of them changed, and each leaf's partner (-1: none)."""

    parsed: ParsedCode
    changed: list[int]
    partner: list[int]


@dataclass
class Insertion:
    """A run of leaves first..last of the other side that has no counterpart here, and where it landed.

    `before` / `after` are the leaves of this side just before and after the insertion point (-1 / the leaf
    count when there is none); `extends_before` / `extends_after` say the run shares its statement with its
    unchanged neighbour on that side, so it extends that statement rather than adding whole statements.
    """

    first: int
    last: int
    before: int
    after: int
    extends_before: bool
    extends_after: bool


def token_spans(side: Side, other: Side) -> list[Span]:
    """Only the changed leaves themselves (an insertion on the other side leaves nothing to mark here)."""
    parsed = side.parsed
    return merge_spans([(parsed.starts[i], parsed.ends[i]) for i in side.changed])


def statement_spans(side: Side, other: Side) -> list[Span]:
    """The statements (or clause headers) holding each change: of a statement over several lines, only the
    lines that hold changed leaves.

    A statement with no changed leaf also counts as changed where the other side inserted leaves into it
    (`return x` -> `return x + 1` marks `return x`): on the line of the leaf next to the insertion point.
    """
    parsed = side.parsed
    marks = {(parsed.statement_of[i], line_of(parsed, i)) for i in side.changed}
    changed_statements = {statement for statement, _ in marks}
    for insertion in insertions(side, other):
        leaf = _extended_leaf(side, other, insertion)
        # a statement with changes of its own is marked on the lines of those changes only
        if leaf is not None and parsed.statement_of[leaf] not in changed_statements:
            marks.add((parsed.statement_of[leaf], line_of(parsed, leaf)))
    return merge_spans([statement_line_span(parsed, statement, line) for statement, line in marks])


def node_spans(side: Side, other: Side) -> list[Span]:
    """The smallest named node enclosing each run of changed leaves, clipped to the run's statement.

    A run is a stretch of consecutive changed leaves inside one statement, so that two deleted statements do
    not grow into their whole enclosing block; a node over several lines is kept to the lines of its run. For
    a run on the other side that extends a statement, the node enclosing the partners of its unchanged
    neighbours (inside the same statement) is marked here.
    """
    parsed = side.parsed
    groups = [list(run) for run in _runs(parsed, side.changed)]
    for insertion in insertions(side, other):
        anchors = _landing_leaves(side, other, insertion)
        if len(anchors) == 2 and parsed.statement_of[anchors[0]] == parsed.statement_of[anchors[1]]:
            groups.append(anchors)
        else:
            groups.extend([leaf, leaf] for leaf in anchors)
    spans: list[Span] = []
    for first, last in groups:
        node = parsed.nodes[first]
        last_end = parsed.nodes[last].end_byte
        while node.parent is not None and (node.end_byte < last_end or not node.is_named):
            node = node.parent
        start = max(parsed.char_offset(node.start_byte), parsed.region(first)[0])
        end = min(parsed.char_offset(node.end_byte), parsed.region(first)[1])
        first_line, last_line = line_of(parsed, first), line_of(parsed, last)
        if _spans_lines(parsed, start, end):
            # a node over several lines (a long header's parameters, a string literal): keep to the lines of
            # the run, as statements do
            statement = parsed.statement_of[first]
            start = max(start, statement_line_span(parsed, statement, first_line)[0])
            end = min(end, statement_line_span(parsed, statement, last_line)[1])
        spans.append((start, end))
    return merge_spans(spans)


def insertions(side: Side, other: Side) -> list[Insertion]:
    """The runs of consecutive changed leaves of `other` that replaced nothing here (pure insertions)."""
    found = []
    other_parsed, partner_of_other = other.parsed, other.partner
    count = len(side.partner)
    for first, last in _consecutive(other.changed):
        left, right = first - 1, last + 1
        # the neighbours of a maximal run are matched; the matching keeps order, so any leaf of this side
        # between their partners is changed: the run replaced it, and it is marked as a change itself
        before = partner_of_other[left] if left >= 0 else -1
        after = partner_of_other[right] if right < len(partner_of_other) else count
        if after != before + 1:
            continue
        statement = other_parsed.statement_of
        found.append(
            Insertion(
                first,
                last,
                before,
                after,
                extends_before=left >= 0 and statement[left] == statement[first],
                extends_after=right < len(statement) and statement[right] == statement[last],
            )
        )
    return found


def _landing_leaves(side: Side, other: Side, insertion: Insertion) -> list[int]:
    """The leaves of this side next to an insertion point, on lines the insertion extends: the leaf after it
    when the inserted leaves end on their right neighbour's line, the leaf before it when they start on their
    left neighbour's line.

    Empty for whole inserted statements, and for whole lines inserted into a statement over several
    lines (an entry added to a dict literal): no line of this side changed there.
    """
    other_parsed, leaves = other.parsed, []
    if insertion.extends_before and insertion.before >= 0:
        if line_of(other_parsed, insertion.first) == line_of(other_parsed, insertion.first - 1):
            leaves.append(insertion.before)
    if insertion.extends_after and insertion.after < len(side.partner):
        if line_of(other_parsed, insertion.last) == line_of(other_parsed, insertion.last + 1):
            leaves.append(insertion.after)
    return leaves


def _extended_leaf(side: Side, other: Side, insertion: Insertion) -> int | None:
    """The leaf of this side on the line an insertion extends (the one after it if both qualify)."""
    leaves = _landing_leaves(side, other, insertion)
    return leaves[-1] if leaves else None


def anchor_leaf(side: Side, other: Side, insertion: Insertion) -> int | None:
    """The error point of an insertion: the first code leaf after it, or, when the inserted code ends a block
    (nothing follows, or what follows is less deeply nested), the last leaf before it."""
    keys, count = side.parsed.keys, len(side.partner)
    inserted_depth = other.parsed.keys[insertion.first][2]
    after, before = insertion.after, insertion.before
    if after < count and (keys[after][2] >= inserted_depth or before < 0):
        return after
    if before >= 0:
        return before
    return None


def anchor_spans(side: Side, other: Side, granularity: str) -> list[Span]:
    """Where the other side's insertions belong on this side, at a granularity (token, statement or node).

    token: the anchor leaf (`anchor_leaf`); statement and node: the statement enclosing the insertion point
    (the statement an insertion extends, else the anchor leaf's), on the anchor's line.
    """
    parsed = side.parsed
    spans: list[Span] = []
    for insertion in insertions(side, other):
        leaf = anchor_leaf(side, other, insertion)
        if leaf is None:
            continue
        if granularity == "token":
            spans.append((parsed.starts[leaf], parsed.ends[leaf]))
            continue
        extended = _extended_leaf(side, other, insertion)
        leaf = extended if extended is not None else leaf
        spans.append(statement_line_span(parsed, parsed.statement_of[leaf], line_of(parsed, leaf)))
    return merge_spans(spans)


def line_of(parsed: ParsedCode, leaf: int) -> int:
    """0-based line of a leaf's first character."""
    return bisect_right(parsed.line_starts, parsed.starts[leaf]) - 1


def statement_line_span(parsed: ParsedCode, statement: int, line: int) -> Span:
    """The part of a statement on one line: from its first leaf there to its last (comments left out)."""
    region_start, region_end = parsed.statement_starts[statement], parsed.statement_ends[statement]
    line_starts = parsed.line_starts
    line_start = line_starts[line]
    line_end = line_starts[line + 1] if line + 1 < len(line_starts) else len(parsed.text)
    if region_start >= line_start and region_end <= line_end:
        return region_start, region_end  # a statement on one line: all of it
    on_line = [(s, e) for s, e in parsed.statement_leaf_spans(statement) if line_start <= s < line_end]
    if not on_line:
        return max(region_start, line_start), min(region_end, line_end)
    return on_line[0][0], on_line[-1][1]


def _spans_lines(parsed: ParsedCode, start: int, end: int) -> bool:
    line_starts = parsed.line_starts
    return bisect_right(line_starts, start) != bisect_right(line_starts, max(start, end - 1))


def _consecutive(indices: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _runs(parsed: ParsedCode, changed: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    statement_of = parsed.statement_of
    for i in changed:
        if runs and runs[-1][1] == i - 1 and statement_of[i] == statement_of[i - 1]:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def widen(spans: list[Span], line_starts: list[int], text_length: int, context: int) -> list[Span]:
    """Grow each span to whole lines, `context` lines above and below (the paper's diff augmentation)."""
    if context <= 0 or not spans:
        return spans
    line_count = len(line_starts) if line_starts[-1] < text_length else len(line_starts) - 1
    widened = []
    for start, end in spans:
        first = bisect_right(line_starts, start) - 1 - context
        last = bisect_right(line_starts, max(start, end - 1)) - 1 + context
        first, last = max(first, 0), min(last, line_count - 1)
        widened.append(
            (line_starts[first], line_starts[last + 1] if last + 1 < len(line_starts) else text_length)
        )
    return merge_spans(widened)


def lines_touched(spans: list[Span], line_starts: list[int]) -> list[int]:
    """1-based numbers of the lines that the spans overlap."""
    lines: list[int] = []
    for start, end in spans:
        first = bisect_right(line_starts, start)
        last = bisect_right(line_starts, max(start, end - 1))
        lines.extend(range(max(first, lines[-1] + 1 if lines else 1), last + 1))
    return lines
