"""The paper's Algorithm 1: a true longest common subsequence of lines; lines outside it are D- / D+.

Also the fallback when tree-sitter cannot parse one side.
"""

from __future__ import annotations

from rapidfuzz.distance import Indel

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


def line_diff_counts(before: str, after: str) -> tuple[int, int]:
    """How many lines Algorithm 1 marks on each side (D-, D+): the size the paper filters pairs on."""
    a, b = _contents(before), _contents(after)
    common = (len(a) + len(b) - Indel.distance(a, b)) // 2  # Indel distance = len(a) + len(b) - 2 * LCS
    return len(a) - common, len(b) - common


def _contents(text: str) -> list[str]:
    if "\r" in text:
        return [content for _, _, content in split_lines(text)]
    lines = text.split("\n")
    if lines[-1] == "":  # a text that ends with a line break has no empty last line
        lines.pop()
    return lines


def line_anchor_spans(before: str, after: str) -> list[Span]:
    """Whole lines of `before` where the lines `after` inserted belong (for a pair whose D- is empty).

    For each inserted run: the first non-blank line after the insertion point, unless the inserted lines end
    a block there (what follows is less indented, or nothing follows): then the last non-blank line before.
    """
    before_lines, after_lines = split_lines(before), split_lines(after)
    matched = match_sequences([c for _, _, c in before_lines], [c for _, _, c in after_lines])
    spans = []
    runs: list[list[int]] = []
    for j in matched.after_changed:
        if runs and runs[-1][-1] == j - 1:
            runs[-1].append(j)
        else:
            runs.append([j])
    for run in runs:
        inserted = [after_lines[j][2] for j in run if after_lines[j][2].strip()] or [after_lines[run[0]][2]]
        indent = _indent(inserted[0])
        right = matched.after_partner[run[-1] + 1] if run[-1] + 1 < len(after_lines) else len(before_lines)
        left = matched.after_partner[run[0] - 1] if run[0] > 0 else -1
        following = next((k for k in range(right, len(before_lines)) if before_lines[k][2].strip()), None)
        preceding = next((k for k in range(left, -1, -1) if before_lines[k][2].strip()), None)
        if following is not None and (_indent(before_lines[following][2]) >= indent or preceding is None):
            chosen = following
        else:
            chosen = preceding if preceding is not None else following
        if chosen is None:  # the inserted lines replaced every line there is: the last non-blank one
            chosen = next(
                (k for k in range(len(before_lines) - 1, -1, -1) if before_lines[k][2].strip()), None
            )
        if chosen is not None:
            spans.append(before_lines[chosen][:2])
    return merge_spans(spans)


def _indent(content: str) -> int:
    return len(content) - len(content.lstrip())


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
