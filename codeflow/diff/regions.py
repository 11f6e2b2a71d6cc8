"""Changed leaves -> character spans, at the requested granularity, optionally widened by K lines.

Each function gets the side whose spans it computes and the other side: an edit that only inserts leaves
into a statement (`return x` -> `return x + 1`) changes nothing on one side at leaf level, yet the statement
it lands in did change, so `statement` and `node` mark it there too.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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


def token_spans(side: Side, other: Side) -> list[Span]:
    """Only the changed leaves themselves (an insertion on the other side leaves nothing to mark here)."""
    parsed = side.parsed
    return merge_spans([(parsed.starts[i], parsed.ends[i]) for i in side.changed])


def statement_spans(side: Side, other: Side) -> list[Span]:
    """The simple statement or clause header enclosing each change, whole even over several lines.

    A statement also counts as changed when its counterpart on the other side has changed leaves.
    """
    parsed = side.parsed
    regions = {parsed.region(i) for i in side.changed}
    other_starts = other.parsed.starts
    for region_start, region_end in {other.parsed.region(i) for i in other.changed}:
        # the other side's leaves inside that changed statement, found by position (leaves are in text order)
        for k in range(bisect_left(other_starts, region_start), bisect_left(other_starts, region_end)):
            partner = other.partner[k]
            if partner >= 0:
                regions.add(parsed.region(partner))
    return merge_spans(list(regions))


def node_spans(side: Side, other: Side) -> list[Span]:
    """The smallest named node enclosing each run of changed leaves, clipped to the run's statement.

    A run is a stretch of consecutive changed leaves inside one statement, so that two deleted statements do
    not grow into their whole enclosing block. For a run on the other side, the node enclosing the partners
    of its unchanged neighbours (inside the same statement) is marked here.
    """
    parsed = side.parsed
    groups = [list(run) for run in _runs(parsed, side.changed)]
    for first, last in _runs(other.parsed, other.changed):
        anchors = _insertion_anchors(side, other, first, last)
        if len(anchors) == 2 and parsed.region(anchors[0]) == parsed.region(anchors[1]):
            groups.append(anchors)
        else:
            groups.extend([a, a] for a in anchors)
    spans: list[Span] = []
    for first, last in groups:
        node = parsed.nodes[first]
        last_end = parsed.nodes[last].end_byte
        while node.parent is not None and (node.end_byte < last_end or not node.is_named):
            node = node.parent
        start = max(parsed.char_offset(node.start_byte), parsed.stmt_starts[first])
        end = min(parsed.char_offset(node.end_byte), parsed.stmt_ends[first])
        spans.append((start, end))
    return merge_spans(spans)


def _insertion_anchors(side: Side, other: Side, first: int, last: int) -> list[int]:
    """Leaves of `side` next to where the other side's run first..last was inserted, if it was a pure insertion.

    The anchors are the partners of the run's unchanged neighbours inside its statement. A run that replaced
    leaves of `side` gives none: those leaves are changed themselves and already marked.
    """
    region = other.parsed.region(first)
    left, right = first - 1, last + 1
    anchors = []
    if left >= 0 and other.partner[left] >= 0 and other.parsed.region(left) == region:
        p = other.partner[left]
        if _changed_in_same_statement(side, p, p + 1):
            return []
        anchors.append(p)
    if right < len(other.partner) and other.partner[right] >= 0 and other.parsed.region(right) == region:
        q = other.partner[right]
        if _changed_in_same_statement(side, q, q - 1):
            return []
        anchors.append(q)
    return anchors


def _changed_in_same_statement(side: Side, anchor: int, neighbour: int) -> bool:
    return (
        0 <= neighbour < len(side.partner)
        and side.partner[neighbour] < 0
        and side.parsed.region(neighbour) == side.parsed.region(anchor)
    )


def _runs(parsed: ParsedCode, changed: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in changed:
        if runs and runs[-1][1] == i - 1 and parsed.region(i) == parsed.region(i - 1):
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
