"""Changed leaves -> character spans, at the requested granularity, optionally widened by K lines."""

from __future__ import annotations

from bisect import bisect_right

from codeflow.diff.line import merge_spans
from codeflow.diff.parse import ParsedCode

Span = tuple[int, int]


def token_spans(parsed: ParsedCode, changed: list[int]) -> list[Span]:
    """Only the changed leaves themselves."""
    return merge_spans([(parsed.starts[i], parsed.ends[i]) for i in changed])


def statement_spans(parsed: ParsedCode, changed: list[int]) -> list[Span]:
    """The simple statement or clause header that encloses each changed leaf, whole even over several lines."""
    return merge_spans([(parsed.stmt_starts[i], parsed.stmt_ends[i]) for i in changed])


def node_spans(parsed: ParsedCode, changed: list[int]) -> list[Span]:
    """The smallest named node enclosing each run of changed leaves, clipped to the run's statement region.

    A run is a stretch of consecutive changed leaves inside one statement region, so that two deleted
    statements do not grow into their whole enclosing block.
    """
    spans: list[Span] = []
    for first, last in _runs(parsed, changed):
        node = parsed.nodes[first]
        last_end = parsed.nodes[last].end_byte
        while node.parent is not None and (node.end_byte < last_end or not node.is_named):
            node = node.parent
        start = max(parsed.char_offset(node.start_byte), parsed.stmt_starts[first])
        end = min(parsed.char_offset(node.end_byte), parsed.stmt_ends[first])
        spans.append((start, end))
    return merge_spans(spans)


def _runs(parsed: ParsedCode, changed: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for i in changed:
        if (
            runs
            and runs[-1][1] == i - 1
            and parsed.stmt_starts[i] == parsed.stmt_starts[i - 1]
            and parsed.stmt_ends[i] == parsed.stmt_ends[i - 1]
        ):
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def widen(spans: list[Span], line_starts: list[int], text_length: int, context: int) -> list[Span]:
    """Grow each span to whole lines, `context` lines above and below (the paper's diff augmentation)."""
    if context <= 0 or not spans:
        return spans
    line_count = (
        len(line_starts) if line_starts[-1] < text_length or text_length == 0 else len(line_starts) - 1
    )
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
        for number in range(max(first, lines[-1] + 1 if lines else 1), last + 1):
            lines.append(number)
    return lines
