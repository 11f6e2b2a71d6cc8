"""The paper's Algorithm 1: a true longest common subsequence of lines; lines outside it are D- / D+.

Also the fallback when tree-sitter cannot parse one side.
"""

from __future__ import annotations

from codeflow.diff.match import match_sequences
from codeflow.diff.parse import line_starts

Span = tuple[int, int]


def split_lines(text: str, starts: list[int] | None = None) -> list[tuple[int, int, str]]:
    """(start, end, content) of each line: end includes the line break, content excludes it."""
    starts = starts if starts is not None else line_starts(text)
    # a text that ends with a line break has no empty last line
    bounds = starts + [len(text)] if starts[-1] != len(text) else starts
    lines = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        lines.append((start, end, text[start:end].rstrip("\r\n")))
    return lines


def line_diff(before: str, after: str) -> tuple[list[Span], list[Span]]:
    """Whole-line spans (with their line break) of the lines outside an LCS of lines, on each side.

    Lines compare by content without their line break, so a missing final newline is not a change.
    """
    before_lines = split_lines(before)
    after_lines = split_lines(after)
    matched = match_sequences([c for _, _, c in before_lines], [c for _, _, c in after_lines])
    return (
        merge_spans([before_lines[i][:2] for i in matched.before_changed]),
        merge_spans([after_lines[i][:2] for i in matched.after_changed]),
    )


def merge_spans(spans: list[Span]) -> list[Span]:
    """Sort spans and merge those that overlap or touch; drop empty ones."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]
